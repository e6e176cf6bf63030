"""faqtune's matcher: how alike a question is to each FAQ, learned to rank by LightGBM.

Features of a (question, FAQ) pair: cosine of word and character TF-IDF vectors, similarity
to the FAQ's answer, term overlap, the rarest word they share, similarity to the centroid of
the FAQ's training questions (leave-one-out for training rows: the explicit form of what the
reference memorises) and to the centroid of its neighbourhood (the questions of the most
similar FAQs too), and each similarity's gap to the question's best FAQ and the FAQ's rank
under it. With a sentence encoder (`encoder`), the cosine of the question's embedding to the
FAQ's and to the FAQ's centroid of training questions' embeddings join them, with their gaps
and ranks. At scoring time LightGBM ranks a shortlist of the most similar FAQs (`rerank_top`),
not all of them. With a pool (`pool`), a question's features are computed only for the FAQs a
cheap retrieval finds for it (`features.pairs`), gaps and ranks within that pool: the cost per
question no longer grows with the catalogue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterator, NamedTuple, Sequence, TypeVar

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.class_weight import compute_sample_weight

from faqtune.features import pairs
from faqtune.features import similarity as sim
from faqtune.features.encoder import TextEncoder, embed, resolve_encoder
from faqtune.features.vectors import fit_tfidf
from faqtune.model.base import PairRanker
from faqtune.parallel import ordered_map, threads_for
from faqtune.progress import progress_lines

Result = TypeVar("Result")
logger = logging.getLogger(__name__)
# From this many FAQs on, a model without a pool says that one would train much faster.
POOL_HINT_FAQS = 5_000

FEATURES = (
    "word_cosine", "char_cosine", "answer_cosine", "word_overlap",
    "word_centroid", "char_centroid", "rarest_shared_idf",
    "word_cosine_gap", "word_cosine_rank", "char_cosine_gap", "char_cosine_rank",
    "word_centroid_gap", "word_centroid_rank", "char_centroid_gap", "char_centroid_rank",
    "rarest_shared_idf_gap", "rarest_shared_idf_rank",
    "question_length", "neighbour_centroid", "neighbour_centroid_gap", "neighbour_centroid_rank",
)
# With an encoder: embedding cosine to the FAQ's text and to its centroid, gaps and ranks
SEMANTIC = ("semantic_cosine", "semantic_centroid", "semantic_cosine_gap",
            "semantic_cosine_rank", "semantic_centroid_gap", "semantic_centroid_rank")
PRIOR = (FEATURES.index("word_cosine_gap"), FEATURES.index("char_cosine_gap"))
# What shortlists the FAQs LightGBM scores (`rerank_top`): cheap, and a high recall. The
# rarest shared word's IDF joins them as a share of the largest IDF, so a FAQ that shares one
# identifier with the question makes the shortlist even when the rest of its text differs.
RETRIEVAL = ("word_cosine", "char_cosine", "word_centroid", "char_centroid",
             "semantic_cosine", "semantic_centroid")


def _padded(codes: np.ndarray, faqs: np.ndarray, n_questions: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (question `codes[i]`, FAQ `faqs[i]`) as each question's row of FAQs, padded with
    -1 (a pool's `extra` columns), and each pair's place in its row."""
    slot = pd.Series(codes).groupby(codes).cumcount().to_numpy()
    extra = np.full((n_questions, slot.max() + 1 if len(slot) else 1), -1, np.int64)
    extra[codes, slot] = faqs
    return extra, slot


def monotone_signs(features: Sequence[str]) -> list[int]:
    """A better similarity never makes a worse match: +1 (or -1 for ranks, where 0 is best)."""
    return [-1 if f.endswith("_rank") else 0 if f == "question_length" else 1 for f in features]


@dataclass
class _Space:
    """One vector space (word or char): the fitted vectorizer and the FAQ-side matrices."""

    vectorizer: object
    faqs: sp.csr_matrix
    centroid_sums: sp.csr_matrix
    centroid_sq_norms: np.ndarray
    answers: sp.csr_matrix | None = None
    rarity: sp.csr_matrix | None = None
    neighbours: sp.csr_matrix | None = None
    neighbour_sq_norms: np.ndarray | None = None
    dense_bytes: int = 0

    @cached_property
    def operands(self) -> dict:
        """FAQ-side matrices prepared for products; rebuilt after unpickling, not stored."""
        def prepared(matrix):
            return sim.right_operand(matrix, self.dense_bytes)

        operands = {"faqs": prepared(self.faqs), "centroids": prepared(self.centroid_sums)}
        if self.rarity is not None:  # the word space: term overlap and the rarest shared term
            operands["binary_faqs"] = prepared(sim.binary(self.faqs))
            operands["faq_sizes"] = np.diff(self.faqs.indptr).astype(np.float32)
            operands["rarity"] = prepared(self.rarity)
        if self.answers is not None:
            operands["answers"] = prepared(self.answers)
        if self.neighbours is not None:
            operands["neighbours_by_member"] = self.neighbours.T.tocsr()
        return operands

    @cached_property
    def pair_rows(self) -> dict:
        """FAQ-side matrices by FAQ row, for `pairs` products (a pool's pairs)."""
        rows = {"faqs": self.faqs.tocsr(), "centroids": self.centroid_sums.tocsr()}
        if self.rarity is not None:
            rows["binary_faqs"] = sim.binary(self.faqs).tocsr()
            rows["faq_sizes"] = np.diff(self.faqs.indptr).astype(np.float32)
            rows["rarity"] = self.rarity.tocsr()
        if self.answers is not None:
            rows["answers"] = self.answers.tocsr()
        return rows

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("operands", "pair_rows")}


@dataclass
class _Embedded:
    """The encoder's side: unit FAQ embeddings (n_faqs, dim) and the centroid sums."""

    faqs: np.ndarray
    centroid_sums: np.ndarray

    @cached_property
    def operands(self) -> dict:
        sums = self.centroid_sums.astype(np.float64)
        return {"faqs": np.ascontiguousarray(self.faqs.T),
                "centroids": np.ascontiguousarray(self.centroid_sums.T),
                "centroid_sq_norms": np.einsum("ij,ij->i", sums, sums)}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "operands"}

    def similarities(self, questions: np.ndarray, own_faq: np.ndarray | None) -> dict:
        """The SEMANTIC similarities of a block of question embeddings."""
        ops = self.operands
        products = (questions @ ops["centroids"]).astype(np.float64)
        return {"semantic_cosine": questions @ ops["faqs"],
                "semantic_centroid": sim.centroid_cosine(questions, products,
                                                         ops["centroid_sq_norms"], own_faq)}

    def pair_similarities(self, questions: np.ndarray, columns: np.ndarray,
                          own: np.ndarray) -> dict:
        """The SEMANTIC similarities of each question with the FAQs of its row of `columns`
        (`own`: where that FAQ is the question's own, for leave-one-out)."""
        n_rows, width = columns.shape
        cosine, products = np.empty((n_rows, width), np.float32), np.empty((n_rows, width))
        for start in range(0, n_rows, 64):  # gathered FAQ rows held 64 questions at a time
            rows = slice(start, start + 64)
            cosine[rows] = np.einsum("bd,bwd->bw", questions[rows], self.faqs[columns[rows]])
            products[rows] = np.einsum("bd,bwd->bw", questions[rows],
                                       self.centroid_sums[columns[rows]])
        self_sq = np.broadcast_to(np.einsum("ij,ij->i", questions, questions,
                                            dtype=np.float64)[:, None], columns.shape)
        return {"semantic_cosine": cosine,
                "semantic_centroid": sim.pair_centroid_cosine(
                    products, self.operands["centroid_sq_norms"][columns], own, self_sq)}


class _Inputs(NamedTuple):
    """The question side of a block product: TF-IDF rows, log lengths, embeddings."""

    word: sp.csr_matrix
    char: sp.csr_matrix
    lengths: np.ndarray
    embedded: np.ndarray | None


class FaqMatcher(PairRanker):
    """faqtune's matcher: similarity features of (question, FAQ) pairs ranked by LightGBM.

    Parameters
    ----------
    estimators : int, default=300
        Boosting rounds.
    ngrams : int, default=2
        Word n-grams 1..ngrams of the word TF-IDF space.
    char_ngrams : int, default=4
        Character n-grams (`char_wb`) 2..char_ngrams of the character TF-IDF space.
    min_child_samples : int, default=20
        LightGBM's minimum number of pairs in a leaf (`min_data_in_leaf`).
    num_leaves : int, default=31
        LightGBM's leaves per tree.
    learning_rate : float, default=0.03
        LightGBM's shrinkage per round.
    feature_fraction : float, default=1.0
        Share of feature columns each tree sees.
    objective : {"binary", "lambdarank"}, default="binary"
        Pairs classified one by one, or ranked per question.
    negatives : {"random", "hard"}, default="random"
        Training negatives: the prepared random ones, or the most similar wrong FAQs.
    monotone : bool, default=True
        A higher similarity never lowers the score (monotone constraints).
    prior_weight : float, default=0.0
        Boosting starts from this times the word + char cosine gap to the best FAQ;
        0 = from nothing.
    centroid_prior : float, default=3.0
        A FAQ's own text counts as this many of its questions in its centroid.
    neighbours : int, default=30
        A FAQ's neighbourhood centroid pools the questions of this many most similar FAQs
        (itself included).
    rarity_sharpness : float, default=3.0
        How closely the shared-rare-word feature follows the single rarest shared word
        (a soft maximum of IDF).
    rerank_top : int, default=100
        LightGBM scores this many FAQs per question, shortlisted by similarity; 0 = all.
    rank_cap : int, default=256
        Rank columns count the FAQs more similar than the candidate up to this many (a FAQ
        further down gets this rank); 0 = no cap. Keeps each question's work linear in the
        catalogue.
    pool : int, default=0
        Features are computed for this many FAQs per question, found by a cheap retrieval
        over the question's informative words (`features.pairs.PoolRetrieval`); gaps and
        ranks are taken within the pool, and `rerank_top` shortlists from it. 0 = every FAQ.
        For large catalogues: a question then costs the same whatever their size. Needs
        numba (the `scale` extra).
    unweighted : bool, default=False
        True: no class-balancing sample weights.
    n_jobs : int, default=0
        LightGBM threads; 0 = all cores.
    random_state : int, default=0
        LightGBM's seed.
    cache_dir : str or None, default=None
        A folder for the TF-IDF cache (arrays and JSON); None = no cache.
    block_pairs : int, default=131072
        (question, FAQ) pairs featurized and scored at once: bounds memory.
    dense_operand_mib : int, default=256
        FAQ-side matrices up to this size (at least 1 % filled) are kept dense (faster
        products); 0 = sparse.
    encoder : str or TextEncoder, default="none"
        A sentence encoder whose embeddings add the SEMANTIC columns: "none", "minilm", a
        folder holding an ONNX encoder and its tokenizer.json, or an object with `identity`
        and `encode` (`faqtune.features.encoder.TextEncoder`).
    encoder_max_tokens : int, default=256
        Tokens of a text the encoder reads; the rest is cut.

    Attributes
    ----------
    word_, char_ : _Space
        The fitted word and character TF-IDF spaces and their FAQ-side matrices.
    encoder_ : TextEncoder or None
        The encoder the SEMANTIC columns come from.
    embedded_ : _Embedded or None
        The FAQs' embeddings and embedding centroids.
    retrieval_ : PoolRetrieval or None
        What finds each question's pool (None without a pool, or when it holds every FAQ).
    lgb_booster_ : lightgbm.Booster
        The trained booster (also `booster_`).
    """

    def __init__(self, estimators: int = 300, ngrams: int = 2, char_ngrams: int = 4,
                 min_child_samples: int = 20, num_leaves: int = 31, learning_rate: float = 0.03,
                 feature_fraction: float = 1.0, objective: str = "binary",
                 negatives: str = "random", monotone: bool = True, prior_weight: float = 0.0,
                 centroid_prior: float = 3.0, neighbours: int = 30,
                 rarity_sharpness: float = 3.0,
                 rerank_top: int = 100, rank_cap: int = 256, pool: int = 0,
                 unweighted: bool = False, n_jobs: int = 0,
                 random_state: int = 0, cache_dir: str | None = None,
                 block_pairs: int = 131_072, dense_operand_mib: int = 256,
                 encoder: str | TextEncoder = "none", encoder_max_tokens: int = 256):
        self.estimators = estimators
        self.ngrams = ngrams
        self.char_ngrams = char_ngrams
        self.min_child_samples = min_child_samples
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.feature_fraction = feature_fraction
        self.objective = objective
        self.negatives = negatives
        self.monotone = monotone
        self.prior_weight = prior_weight
        self.centroid_prior = centroid_prior
        self.neighbours = neighbours
        self.rarity_sharpness = rarity_sharpness
        self.rerank_top = rerank_top
        self.rank_cap = rank_cap
        self.pool = pool
        self.unweighted = unweighted
        self.n_jobs = n_jobs
        self.block_pairs = block_pairs
        self.dense_operand_mib = dense_operand_mib
        self.random_state = random_state
        self.cache_dir = cache_dir
        self.encoder = encoder
        self.encoder_max_tokens = encoder_max_tokens

    @property
    def features(self) -> tuple[str, ...]:
        """The columns `_similarities` returns; a subclass that adds columns extends this
        (the benchmarks try retrieval scores that way)."""
        return FEATURES + (SEMANTIC if self._uses_encoder() else ())

    def _uses_encoder(self) -> bool:
        encoder = getattr(self, "encoder", "none")  # a model pickled before encoders: none
        return not (isinstance(encoder, str) and encoder == "none")

    def _embedded_texts(self, texts: Sequence[str]) -> np.ndarray | None:
        if getattr(self, "encoder_", None) is None:
            return None
        return embed(self.encoder_, texts, self.cache_dir, self.n_jobs)

    # -- features -----------------------------------------------------------------------
    def _space(self, corpus: list[str], analyzer: str, ngram_range, faqs: list[str],
               questions: list[int], owner: np.ndarray) -> tuple[_Space, sp.csr_matrix]:
        vectorizer, matrix = fit_tfidf(corpus, ngram_range, analyzer, self.cache_dir)
        faq_vectors, question_vectors = matrix[: len(faqs)], matrix[questions]
        # The FAQ's own text counts as `centroid_prior` extra questions: FAQs with few
        # training questions get a centroid near their text instead of an empty one.
        sums = (sim.centroid_sums(question_vectors, owner, len(faqs))
                + self.centroid_prior * faq_vectors).tocsr()
        sq_norms = np.asarray(sums.multiply(sums).sum(axis=1)).ravel()
        return (_Space(vectorizer, faq_vectors, sums, sq_norms,
                       dense_bytes=self.dense_operand_mib * 2**20), question_vectors)

    def _similarities(self, word: sp.csr_matrix, char: sp.csr_matrix, lengths: np.ndarray,
                      own_faq: np.ndarray | None,
                      embedded: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Every similarity of each (block question, FAQ) pair: one (n_block, n_faqs) array
        per value column of `features`; `_gather` derives the gap and rank columns."""
        w, c = self.word_.operands, self.char_.operands
        word_products = sim.centroid_products(word, w["centroids"])
        values = {
            "word_cosine": sim.cosine(word, w["faqs"]),
            "char_cosine": sim.cosine(char, c["faqs"]),
            "answer_cosine": sim.cosine(word, w["answers"]),
            "word_overlap": sim.overlap(word, w["binary_faqs"], w["faq_sizes"]),
            "word_centroid": sim.centroid_cosine(word, word_products,
                                                 self.word_.centroid_sq_norms, own_faq),
            "char_centroid": sim.centroid_cosine(
                char, sim.centroid_products(char, c["centroids"]),
                self.char_.centroid_sq_norms, own_faq),
            "rarest_shared_idf": sim.rarest_shared(word, w["rarity"], self.rarity_sharpness),
            "question_length": np.broadcast_to(lengths[:, None],
                                               (len(lengths), self.word_.faqs.shape[0])),
            "neighbour_centroid": sim.neighbour_cosine(
                word, word_products, self.word_.neighbours, self.word_.neighbour_sq_norms,
                own_faq, w.get("neighbours_by_member")),
        }
        if embedded is not None:
            values.update(self.embedded_.similarities(embedded, own_faq))
        return values

    def _pool_similarities(self, word: sp.csr_matrix, char: sp.csr_matrix,
                           lengths: np.ndarray, own_faq: np.ndarray | None,
                           embedded: np.ndarray | None,
                           extra: np.ndarray | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """`_similarities` of each block question with the FAQs of its pool and then its
        `extra` FAQs (-1: none): (n_block, width) arrays and the FAQ of each column."""
        n_faqs, size = len(self.faqs_), self._pool_width()
        if self.retrieval_ is None:  # the pool holds every FAQ
            columns = np.broadcast_to(np.arange(n_faqs), (len(lengths), n_faqs))
        else:
            columns = self.retrieval_.pools(word, size, self._per_block(n_faqs))
        if extra is not None:
            columns = np.hstack([columns, np.where(extra >= 0, extra, columns[:, :1])])
        shape = columns.shape
        ptr, flat = np.arange(0, columns.size + 1, shape[1]), np.ascontiguousarray(columns).ravel()
        w, c = self.word_.pair_rows, self.char_.pair_rows

        def dots(questions: sp.csr_matrix, matrix: sp.csr_matrix) -> np.ndarray:
            return pairs.pair_dots(questions, matrix, ptr, flat).reshape(shape)

        own = (np.zeros(shape, bool) if own_faq is None else columns == own_faq[:, None])
        word_sq = np.broadcast_to(sim.self_sq(word)[:, None], shape)
        char_sq = np.broadcast_to(sim.self_sq(char)[:, None], shape)
        neighbours = self.word_.neighbours
        weight = (None if own_faq is None else
                  pairs.own_weights(neighbours, own_faq, ptr, flat).reshape(shape))
        word_products = dots(word, w["centroids"])
        values = {
            "word_cosine": dots(word, w["faqs"]).astype(np.float32),
            "char_cosine": dots(char, c["faqs"]).astype(np.float32),
            "answer_cosine": dots(word, w["answers"]).astype(np.float32),
            "word_overlap": (dots(sim.binary(word), w["binary_faqs"])
                             / np.maximum(w["faq_sizes"][columns], 1)).astype(np.float32),
            "word_centroid": sim.pair_centroid_cosine(
                word_products, self.word_.centroid_sq_norms[columns], own, word_sq),
            "char_centroid": sim.pair_centroid_cosine(
                dots(char, c["centroids"]), self.char_.centroid_sq_norms[columns], own, char_sq),
            "rarest_shared_idf": (np.log1p(dots(sim.binary(word), w["rarity"]))
                                  / self.rarity_sharpness).astype(np.float32),
            "question_length": np.broadcast_to(lengths[:, None], shape),
            "neighbour_centroid": sim.pair_neighbour_cosine(
                pairs.neighbourhood_dots(neighbours, ptr, flat, word_products).reshape(shape),
                self.word_.neighbour_sq_norms[columns], weight, word_sq),
        }
        if embedded is not None:
            values.update(self.embedded_.pair_similarities(embedded, columns, own))
        return values, columns

    def _pool_width(self) -> int:
        """FAQs in each question's pool; 0 without a pool."""
        pool = getattr(self, "pool", 0)  # a model pickled before pools: none
        return min(pool, len(self.faqs_)) if pool else 0

    def questions_per_block(self) -> int:
        return self._per_block(self._pool_width() or len(self.faqs_))

    def _gather(self, values: dict[str, np.ndarray], rows: np.ndarray | None = None,
                faqs: np.ndarray | None = None, width: int | None = None) -> np.ndarray:
        """(n_pairs, n_features) float32 rows of the pairs (rows[i], faqs[i]); all if None
        (`faqs`: columns of `values`, the FAQs themselves unless pooled).

        A `_gap` or `_rank` column compares the pair's value with the first `width` columns
        of its row (all if None; a pool's FAQs without the extra ones): the gap to the
        question's best FAQ, the count of FAQs above it."""
        n_rows, n_faqs = values["word_cosine"].shape
        if rows is None:
            rows, faqs = np.repeat(np.arange(n_rows), n_faqs), np.tile(np.arange(n_faqs), n_rows)
        out = np.empty((len(rows), len(self.features)), np.float32)
        relative = {}
        for j, name in enumerate(self.features):
            base, _, kind = name.rpartition("_")
            if kind not in ("gap", "rank") or base not in values:
                out[:, j] = values[name][rows, faqs]
                continue
            if base not in relative:
                best = sim.best_values(values[base][:, :width], getattr(self, "rank_cap", 0))
                relative[base] = dict(zip(("gap", "rank"), sim.gap_and_rank(
                    best, rows, values[base][rows, faqs])))
            out[:, j] = relative[base][kind]
        return out

    def scored_per_question(self) -> int:
        available = self._pool_width() or len(self.faqs_)
        return min(self.rerank_top or available, available)

    def _shortlist(self, values: dict[str, np.ndarray], width: int) -> np.ndarray | None:
        """The `rerank_top` of each row's first `width` columns by summed similarity
        (RETRIEVAL), as columns of `values`; None for all of every FAQ."""
        n_rows = len(values["word_cosine"])
        top = self.scored_per_question()
        if top >= width:
            return None if width == len(self.faqs_) else np.tile(np.arange(width), (n_rows, 1))
        scores = self._retrieval_scores({k: v[:, :width] for k, v in values.items()})
        return np.argpartition(-scores, top - 1, axis=1)[:, :top]

    def _retrieval_scores(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """What the shortlist ranks by: the RETRIEVAL similarities summed, plus the rarest
        shared word's IDF as a share of the largest."""
        return sum(values[name] for name in RETRIEVAL if name in values) + (
            values["rarest_shared_idf"] / self.word_.vectorizer.idf_.max())

    def _operands_ready(self) -> None:
        """Build the FAQ-side operands once, before block threads share them."""
        for side in (self.word_, self.char_):
            if self._pool_width():
                side.pair_rows  # noqa: B018 (a cached property, built here)
            else:
                side.operands  # noqa: B018
        if getattr(self, "embedded_", None) is not None:
            self.embedded_.operands  # noqa: B018

    def _inputs(self, questions: Sequence[str]) -> _Inputs:
        texts = list(questions)
        return _Inputs(self.word_.vectorizer.transform(texts),
                       self.char_.vectorizer.transform(texts),
                       np.log1p([len(t) for t in texts]).astype(np.float32),
                       self._embedded_texts(texts))

    def _map_blocks(self, inputs: _Inputs, block: int,
                    then: Callable[[np.ndarray, dict, np.ndarray | None], Result],
                    unit: str = "questions", own_faq: np.ndarray | None = None,
                    extra: np.ndarray | None = None) -> Iterator[Result]:
        """`then(rows, similarities, columns)` for each block of `block` questions, on
        `n_jobs` threads, in order, with progress lines on a long run. `columns` is None when
        the similarities hold every FAQ in catalogue order; with a pool, each row's FAQs: its
        pool, then its `extra` FAQs (-1: none)."""
        self._operands_ready()

        def one(rows: np.ndarray) -> Result:
            args = (inputs.word[rows], inputs.char[rows], inputs.lengths[rows],
                    None if own_faq is None else own_faq[rows],
                    None if inputs.embedded is None else inputs.embedded[rows])
            if self._pool_width():
                return then(rows, *self._pool_similarities(
                    *args, None if extra is None else extra[rows]))
            return then(rows, self._similarities(*args), None)

        total = len(inputs.lengths)
        blocks = [np.arange(start, min(start + block, total)) for start in range(0, total, block)]
        advance = progress_lines("featurizing", total, unit)
        for rows, result in zip(blocks, ordered_map(one, blocks, threads_for(self.n_jobs))):
            advance(rows[-1] + 1)
            yield result

    def _candidate_blocks(self, questions: Sequence[str], block: int) -> Iterator:
        width = self._pool_width() or len(self.faqs_)

        def candidates(rows: np.ndarray, values: dict, columns: np.ndarray | None) -> tuple:
            shortlist = self._shortlist(values, width)
            if shortlist is None:
                return rows, self._gather(values), None
            local = np.repeat(np.arange(len(rows)), shortlist.shape[1])
            features = self._gather(values, local, shortlist.ravel(), width)
            if columns is not None:
                shortlist = np.take_along_axis(columns, shortlist, axis=1)
            return rows, features, shortlist

        return self._map_blocks(self._inputs(questions), block, candidates)

    def _pair_features(self, X: pd.DataFrame) -> np.ndarray:
        """Features of arbitrary pairs, computed once per distinct question."""
        faq_row = {text: i for i, text in enumerate(self.faqs_)}
        faqs = np.array([faq_row[t] for t in X["Text_y"]], dtype=np.int64)
        codes, questions = pd.factorize(X["Text_x"])
        width = self._pool_width()
        extra, slot = _padded(codes, faqs, len(questions))  # with a pool: its extra FAQs

        def pairs_of(rows: np.ndarray, values: dict, columns) -> tuple[np.ndarray, np.ndarray]:
            mask = (codes >= rows[0]) & (codes <= rows[-1])
            at = faqs[mask] if columns is None else width + slot[mask]
            return mask, self._gather(values, codes[mask] - rows[0], at, width or None)

        out = np.empty((len(X), len(self.features)), np.float32)
        for mask, features in self._map_blocks(self._inputs(questions),
                                               self.questions_per_block(), pairs_of,
                                               extra=extra if width else None):
            out[mask] = features
        return out

    # -- training -----------------------------------------------------------------------
    def _fit(self, X, y, faqs, callbacks, answers):
        with self._timed("featurize_seconds"):
            dataset = self._training_set(X, y, faqs, answers)
        self.lgb_booster_ = lgb.train(self._params(), dataset, num_boost_round=self.estimators,
                                      callbacks=callbacks)

    def _training_set(self, X, y, faqs, answers) -> lgb.Dataset:
        if not self.pool and len(faqs) >= POOL_HINT_FAQS:
            logger.warning("%d FAQs, and model.pool=0 computes every FAQ's features for every "
                           "question: time grows with the square of the catalogue. "
                           "model.pool=128 (pip install 'faqtune[scale]') trained 20,358 FAQs "
                           "14 times as fast with the same test gain@1 (docs/benchmarks.md, "
                           "section 5).", len(faqs))
        faq_row = {text: i for i, text in enumerate(faqs)}
        positives = X[y == 1]
        questions = list(pd.unique(positives["Text_x"]))
        owner = np.array([faq_row[t] for t in
                          positives.drop_duplicates("Text_x")["Text_y"]], dtype=np.int64)
        inputs = self._fit_faq_side(faqs, questions, owner, answers)
        per_question = X.groupby("Text_x", sort=False).size()
        candidates = self._choose_candidates(X, questions, inputs.word, owner, per_question,
                                             faq_row)
        groups = [len(c) for c in candidates]
        codes, chosen = np.repeat(np.arange(len(candidates)), groups), np.concatenate(candidates)
        offsets = np.concatenate([[0], np.cumsum(groups)])
        width = self._pool_width()
        extra, slot = _padded(codes, chosen, len(candidates))  # with a pool: its extra FAQs

        def featurize(rows: np.ndarray, values: dict, columns) -> np.ndarray:
            span = slice(offsets[rows[0]], offsets[rows[-1] + 1])  # the rows' pairs, in order
            at = chosen[span] if columns is None else width + slot[span]
            return self._gather(values, codes[span] - rows[0], at, width or None)

        features = np.vstack(list(self._map_blocks(inputs, self.questions_per_block(),
                                                   featurize, "training questions", owner,
                                                   extra if width else None)))
        labels = (chosen == owner[codes]).astype(int)
        weights = (None if self.unweighted or self.objective == "lambdarank"
                   else compute_sample_weight("balanced", labels))
        return lgb.Dataset(features, labels, weight=weights, init_score=self._prior(features),
                           group=groups if self.objective == "lambdarank" else None,
                           feature_name=list(self.features), free_raw_data=True)

    def _fit_faq_side(self, faqs: list[str], questions: list[str], owner: np.ndarray,
                      answers: list | None) -> _Inputs:
        """Fit the vector spaces and every FAQ-side matrix on the catalogue and the training
        questions (`owner[i]`: question i's FAQ); the training questions' inputs."""
        corpus = list(faqs) + questions
        q_index = list(range(len(faqs), len(corpus)))
        self.word_, word_q = self._space(corpus, "word", (1, self.ngrams), faqs, q_index, owner)
        self.char_, char_q = self._space(corpus, "char_wb", (2, self.char_ngrams), faqs,
                                         q_index, owner)
        answer_texts = [a if isinstance(a, str) else "" for a in (answers or [""] * len(faqs))]
        self.word_.answers = self.word_.vectorizer.transform(answer_texts)
        block = self._per_block(len(faqs))
        threads = threads_for(self.n_jobs)
        self.word_.neighbours = sim.neighbour_weights(self.word_.faqs, self.neighbours, block,
                                                      threads)
        # a block's neighbourhood sums hold about `neighbours` centroids' terms per FAQ, not
        # a row of every FAQ: blocks of FAQs by that (2 FAQs at a time took minutes at 50k)
        self.word_.neighbour_sq_norms = sim.neighbourhood_sq_norms(
            self.word_.neighbours, self.word_.centroid_sums,
            self._per_block(4 * self.neighbours), threads)
        vectorizer = self.word_.vectorizer
        single_words = np.char.find(vectorizer.get_feature_names_out().astype(str), " ") < 0
        self.word_.rarity = sim.rarity_weighted(sim.binary(self.word_.faqs), vectorizer.idf_,
                                                single_words, self.rarity_sharpness)
        self.retrieval_ = (pairs.PoolRetrieval.fit(self.word_.faqs, self.word_.centroid_sums,
                                                   self.word_.centroid_sq_norms)
                           if 0 < self._pool_width() < len(faqs) else None)
        embedded = self._fit_encoder(faqs, questions, owner)
        return _Inputs(word_q, char_q, np.log1p([len(t) for t in questions]).astype(np.float32),
                       embedded)

    def _fit_encoder(self, faqs: list[str], questions: list[str],
                     owner: np.ndarray) -> np.ndarray | None:
        """Embed the catalogue and the training questions (once each, through the cache);
        the FAQ's text counts `centroid_prior` times in its embedding centroid, as in TF-IDF."""
        self.encoder_ = (None if not self._uses_encoder() else
                         resolve_encoder(self.encoder, self.encoder_max_tokens)
                         if isinstance(self.encoder, str) else self.encoder)
        self.embedded_ = None
        if self.encoder_ is None:
            return None
        vectors = embed(self.encoder_, list(faqs) + list(questions), self.cache_dir, self.n_jobs)
        faq_vectors, question_vectors = vectors[: len(faqs)], vectors[len(faqs):]
        sums = self.centroid_prior * faq_vectors.astype(np.float64)
        np.add.at(sums, owner, question_vectors)
        self.embedded_ = _Embedded(faq_vectors, sums.astype(np.float32))
        return question_vectors

    def _choose_candidates(self, X, questions, word_q, owner, per_question,
                           faq_row) -> list[np.ndarray]:
        """The true FAQ first, then the given negatives or the hardest ones."""
        if self.negatives == "random":
            grouped = X.groupby("Text_x", sort=False)["Text_y"].apply(list)
            return [np.array([owner[i]] + [faq_row[t] for t in grouped[q] if faq_row[t] != owner[i]])
                    for i, q in enumerate(questions)]
        chosen = []
        block = self._per_block(len(self.faqs_))
        for start in range(0, len(questions), block):  # one block of rows held at a time
            rows = np.arange(start, min(start + block, len(questions)))
            hardness = self._hardness(word_q[rows], owner[rows])
            hardness[np.arange(len(rows)), owner[rows]] = -np.inf
            for local, i in enumerate(rows):
                k = max(1, min(int(per_question[questions[i]]) - 1, len(self.faqs_) - 1))
                hardest = np.argpartition(-hardness[local], k - 1)[:k]
                chosen.append(np.concatenate([[owner[i]], hardest]))
        return chosen

    def _hardness(self, word_q: sp.csr_matrix, owner: np.ndarray) -> np.ndarray:
        """How alike each question is to each FAQ, for hard negatives: word cosine plus
        word centroid cosine (over the informative words only with a pool's retrieval)."""
        if self.retrieval_ is not None:
            return self.retrieval_.scores(word_q)
        w = self.word_.operands
        return sim.cosine(word_q, w["faqs"]) + sim.centroid_cosine(
            word_q, sim.centroid_products(word_q, w["centroids"]),
            self.word_.centroid_sq_norms, owner)

    def _prior(self, features: np.ndarray) -> np.ndarray:
        """Start boosting from plain text similarity, so that little data cannot do worse
        than cosine ranking; the trees learn corrections to it."""
        return self.prior_weight * (features[:, PRIOR[0]] + features[:, PRIOR[1]])

    def _params(self) -> dict:
        return {
            "objective": self.objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "num_threads": self.n_jobs,
            "monotone_constraints": monotone_signs(self.features) if self.monotone else None,
            "seed": self.random_state,
            "deterministic": True,
            "verbosity": -1,
        }

    @property
    def booster_(self) -> lgb.Booster:
        return self.lgb_booster_

    def feature_importances(self) -> pd.Series:
        return pd.Series(self.lgb_booster_.feature_importance("gain"), index=list(self.features))
