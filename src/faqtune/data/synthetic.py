"""A seeded generator of Stack Overflow style JavaScript FAQs and their duplicates.

Each FAQ is a (task, subject) pair, so FAQs share vocabulary (the same subject under many
tasks, the same task on many subjects) and matching is not trivial. Duplicates paraphrase their
FAQ the way different askers do: synonyms, symptoms instead of the concept's name, their own
context, variable names and code, in a different order, with words from other topics mixed in.
Duplicate counts are log-normal, so a few FAQs have many duplicates and many have few.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from faqtune.config import SyntheticConfig
from faqtune.data.raw import RawCorpus

VERSION = 2  # bump when the generator changes, so cached data sets are rebuilt

SUBJECTS: dict[str, list[str]] = {
    "array": ["array", "list", "js array", "collection of items", "array of values"],
    "object": ["object", "js object", "dictionary", "hash map", "key value object"],
    "string": ["string", "text value", "str", "sequence of characters"],
    "date": ["date", "datetime", "timestamp", "date object"],
    "promise": ["promise", "async result", "then chain", "async function result"],
    "json": ["json", "json data", "json response", "json payload"],
    "element": ["dom element", "html element", "div", "node in the page"],
    "click": ["click event", "onclick handler", "button click", "click listener"],
    "regex": ["regex", "regular expression", "pattern", "regexp"],
    "number": ["number", "integer", "numeric value", "float"],
    "query": ["query string", "url parameters", "get params", "search params of the url"],
    "cookie": ["cookie", "browser cookie", "document cookie"],
    "storage": ["local storage", "localstorage", "web storage", "session storage"],
    "input": ["form input", "text field", "input box", "textbox value"],
    "checkbox": ["checkbox", "check box", "tick box"],
    "select": ["select dropdown", "drop down list", "select box", "combo box"],
    "timer": ["settimeout", "timer", "delay", "setinterval callback"],
    "loop": ["for loop", "loop variable", "closure inside a loop", "loop index"],
    "this": ["this keyword", "this context", "this inside a callback", "bound this"],
    "ajax": ["ajax request", "fetch call", "xmlhttprequest", "http request"],
    "image": ["image", "img tag", "picture", "image element"],
    "class": ["css class", "class name", "classlist", "style class"],
    "function": ["function", "callback", "method", "arrow function"],
    "map": ["map", "es6 map", "map object", "keyed collection"],
}

TASKS: dict[str, dict[str, list[str]]] = {
    "dedupe": {"say": ["remove duplicates from", "get unique values of", "dedupe",
                       "filter out repeated entries in"],
               "symptom": ["has the same entries twice", "shows repeated items"],
               "hint": ["set", "filter", "indexof", "unique"]},
    "sort": {"say": ["sort", "order", "arrange", "rank the entries of"],
             "symptom": ["comes out in the wrong order", "sorts 10 before 9"],
             "hint": ["compare", "localecompare", "ascending", "comparator"]},
    "iterate": {"say": ["loop through", "iterate over", "go over each item of",
                        "walk through"],
                "symptom": ["only processes the last item", "skips entries"],
                "hint": ["foreach", "for of", "keys", "entries"]},
    "empty": {"say": ["check if empty", "test whether blank", "detect an empty",
                      "tell if there is nothing in"],
              "symptom": ["is truthy even with nothing in it", "length check fails"],
              "hint": ["length", "undefined", "null", "falsy"]},
    "clone": {"say": ["deep clone", "copy", "duplicate without reference",
                      "make an independent copy of"],
              "symptom": ["changes the original too", "shares the same reference"],
              "hint": ["spread", "structuredclone", "assign", "reference"]},
    "convert": {"say": ["convert", "turn into another type", "cast", "transform the type of"],
                "symptom": ["gives nan", "prints object object"],
                "hint": ["parseint", "tostring", "number", "coerce"]},
    "compare": {"say": ["compare", "check equality of", "test if two are equal",
                        "diff"],
                "symptom": ["is never equal even when they look the same",
                            "equality returns false"],
                "hint": ["strict equality", "triple equals", "deep equal", "identity"]},
    "format": {"say": ["format", "pretty print", "display nicely", "render"],
               "symptom": ["shows too many decimals", "looks unreadable"],
               "hint": ["tofixed", "padstart", "intl", "template literal"]},
    "validate": {"say": ["validate", "verify", "make sure the user entered a valid",
                         "sanity check"],
                 "symptom": ["accepts garbage", "lets invalid values through"],
                 "hint": ["test", "match", "isnan", "required"]},
    "remove": {"say": ["remove an item from", "delete an entry of", "take out one element of",
                       "drop a value from"],
               "symptom": ["still contains the deleted value", "leaves a hole"],
               "hint": ["splice", "delete", "filter", "index"]},
    "add": {"say": ["add an item to", "append to", "insert into", "push a value into"],
            "symptom": ["does not grow", "overwrites the last value"],
            "hint": ["push", "concat", "unshift", "insert"]},
    "find": {"say": ["find a value in", "search", "look up an entry in", "locate an item in"],
             "symptom": ["returns minus one", "cannot find a value that is there"],
             "hint": ["find", "includes", "indexof", "some"]},
    "merge": {"say": ["merge", "combine two", "join together", "union two"],
              "symptom": ["loses the nested values", "overwrites keys"],
              "hint": ["spread", "assign", "concat", "deep merge"]},
    "undefined": {"say": ["fix undefined when reading", "avoid undefined from",
                          "stop getting undefined from"],
                  "symptom": ["returns undefined", "is undefined inside the callback"],
                  "hint": ["async", "scope", "hoisting", "return value"]},
    "wait": {"say": ["wait for", "run code after", "sequence calls to", "await"],
             "symptom": ["runs before the data arrives", "executes too early"],
             "hint": ["await", "then", "callback", "async"]},
    "serialize": {"say": ["serialize", "send to the server", "store as text",
                          "stringify"],
                  "symptom": ["arrives empty on the server", "loses the types"],
                  "hint": ["json stringify", "encode", "body", "content type"]},
    "toggle": {"say": ["toggle", "show and hide", "switch on and off", "enable or disable"],
               "symptom": ["only works the first time", "does not change state"],
               "hint": ["display none", "toggle", "hidden", "state"]},
    "count": {"say": ["count occurrences in", "get the size of", "tally", "measure"],
              "symptom": ["reports the wrong count", "length is off by one"],
              "hint": ["reduce", "length", "counter", "size"]},
}

CONTEXTS = [
    "i am building a small {app} with {lib}",
    "in my {lib} project for a {app}",
    "working on a {app}, plain javascript no frameworks",
    "this is for a school assignment, a {app}",
    "our legacy {app} still uses {lib}",
    "i am new to javascript and writing a {app}",
]
APPS = ["todo app", "shopping cart", "chat widget", "admin dashboard", "blog", "quiz game",
        "weather page", "booking form", "photo gallery", "browser extension"]
LIBS = ["jquery", "react", "vue", "angular", "node", "express", "typescript", "lodash"]
FILLER = ["please help", "thanks in advance", "what am i doing wrong", "any idea",
          "i searched but found nothing that works", "i tried a few things", "edit: still broken",
          "this drives me crazy", "is there a cleaner way", "tested in chrome and firefox"]
IDENTIFIERS = ["data", "items", "result", "obj", "arr", "list", "response", "user", "cfg",
               "values", "row", "el", "payload", "tmp", "myvar", "output", "record", "stuff"]
# Names from the asker's own code: each FAQ has a few, its duplicates mention some of them.
NAME_VERBS = ["get", "set", "load", "render", "update", "parse", "build", "calc", "fetch",
              "init", "handle", "format", "check", "toggle", "sort", "save", "show", "hide"]
NAME_NOUNS = ["user", "cart", "total", "item", "list", "price", "date", "name", "row", "table",
              "form", "modal", "menu", "token", "score", "image", "page", "count", "field",
              "order", "post", "comment", "file", "tab", "slide", "chart", "map", "city"]
GENERIC_SUBJECTS = ["variable", "thing", "value", "object thing", "data", "stuff", "result"]
GENERIC_SAY = ["handle", "deal with", "work with", "fix", "use"]
GENERIC_SYMPTOMS = ["does not work", "throws an error", "behaves weird", "breaks in safari",
                    "gives the wrong result", "returns undefined"]
TITLE_TEMPLATES = [
    "how do i {say} a {subject} in javascript",
    "{say} {subject}",
    "javascript: {say} {subject}?",
    "my {subject} {symptom}",
    "why {subject} {symptom}",
    "best way to {say} {subject} ({lib})",
    "{subject} - how to {say} it",
    "problem: {subject} {symptom} when i try to {say} it",
]


class _Writer:
    """Builds texts from one random generator, so a seed fixes the whole corpus."""

    def __init__(self, rng: np.random.Generator, noise: float):
        self.rng = rng
        self.noise = noise

    def pick(self, options: list[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def code_block(self) -> str:
        name = self.pick(IDENTIFIERS)
        other = self.pick(IDENTIFIERS)
        return (f"<pre><code>var {name} = {other}.map(function (x) {{ return x.{other}; }});\n"
                f"console.log({name});</code></pre>")

    def context(self) -> str:
        return self.pick(CONTEXTS).format(app=self.pick(APPS), lib=self.pick(LIBS))

    def stray_words(self, vocabulary: list[str]) -> str:
        count = int(self.rng.binomial(10, self.noise))
        return " ".join(self.pick(vocabulary) for _ in range(count))


def _faq_pairs(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(task, subject) per FAQ; beyond every combination, FAQs repeat a topic and differ by
    their own code and wording, as real FAQs on one topic do."""
    pairs = list(itertools.product(TASKS, SUBJECTS))
    order = rng.permutation(len(pairs))
    return [pairs[order[i % len(order)]] for i in range(n)]


def _key_terms(rng: np.random.Generator, count: int) -> list[str]:
    """Identifiers from the FAQ's own code, e.g. `loadcarttotal`."""
    return ["".join([NAME_VERBS[rng.integers(len(NAME_VERBS))],
                     *(NAME_NOUNS[i] for i in rng.choice(len(NAME_NOUNS), 2, replace=False))])
            for _ in range(count)]


def _original(w: _Writer, task: str, subject: str, hints: list[str],
              terms: list[str]) -> tuple[str, str]:
    t, names = TASKS[task], SUBJECTS[subject]
    title = f"How to {t['say'][0]} a {names[0]} in JavaScript?"
    body = (f"<p>What is the correct way to {t['say'][0]} a {names[0]}? "
            f"When I try it, the {names[0]} {t['symptom'][0]}. I read about "
            f"{hints[0]} and {hints[1]} but I am not sure which applies to a {names[0]}.</p>"
            f"{w.code_block()}<p>My code calls {', '.join(terms)}. "
            "Is there a standard approach that works in all browsers?</p>")
    answer = (f"<p>Use {hints[0]} to {t['say'][0]} the {names[0]}; {hints[1]} also works "
              f"in older browsers. Avoid {hints[2]} because the {names[0]} "
              f"{t['symptom'][1]}.</p>{w.code_block()}")
    return f"{title}. {body}", answer


def _duplicate(w: _Writer, task: str, subject: str, hints: list[str], terms: list[str],
               vocabulary: list[str]) -> str:
    """A question about (task, subject) as one asker might phrase it.

    Askers often name the subject vaguely or wrongly, describe a symptom instead of the
    task, and mention other things they tried; `noise` sets how often.
    """
    t = TASKS[task]
    roll = w.rng.random()
    if roll < 1.0 - w.noise:
        subject_words = w.pick(SUBJECTS[subject])
    elif roll < 1.0 - w.noise / 2:
        subject_words = w.pick(GENERIC_SUBJECTS)
    else:
        subject_words = w.pick(SUBJECTS[w.pick(list(SUBJECTS))])
    say = w.pick(t["say"]) if w.rng.random() > w.noise / 2 else w.pick(GENERIC_SAY)
    symptom = w.pick(t["symptom"]) if w.rng.random() > w.noise else w.pick(GENERIC_SYMPTOMS)
    fill = {"say": say, "subject": subject_words, "symptom": symptom, "lib": w.pick(LIBS)}
    title = w.pick(TITLE_TEMPLATES).format(**fill)
    other_task = TASKS[w.pick(list(TASKS))]
    sentences = [
        w.context(),
        f"i have a {subject_words} called {w.pick(IDENTIFIERS)} and it {symptom}",
        f"i need to {say} it" if w.rng.random() < 0.5 else w.pick(FILLER),
        f"someone mentioned {w.pick(hints)}" if w.rng.random() < 0.5 else w.pick(FILLER),
        (f"earlier i had to {w.pick(other_task['say'])} a "
         f"{w.pick(SUBJECTS[w.pick(list(SUBJECTS))])} and that worked"
         if w.rng.random() < w.noise else ""),
        w.stray_words(vocabulary),
        w.pick(FILLER),
        *(f"the problem is in {term}" for term in
          w.rng.choice(terms, min(len(terms), int(w.rng.poisson(1.2))), replace=False)),
    ]
    w.rng.shuffle(sentences)
    body = "".join(f"<p>{s}.</p>" for s in sentences if s)
    if w.rng.random() < 0.7:
        body += w.code_block()
    if w.rng.random() < 0.2:
        body += '<p>see <a href="https://developer.mozilla.org/">https://developer.mozilla.org/</a></p>'
    return f"{title}. {body}"


def generate(cfg: SyntheticConfig, seed: int) -> RawCorpus:
    """A deterministic raw corpus: the same config and seed give the same texts."""
    rng = np.random.default_rng(seed)
    writer = _Writer(rng, cfg.noise)
    n = cfg.originals
    faqs = _faq_pairs(n, rng)
    vocabulary = sorted({word for task, subject in faqs
                         for phrase in TASKS[task]["say"] + SUBJECTS[subject]
                         for word in phrase.split()})
    counts = np.clip(np.round(rng.lognormal(np.log(cfg.dupes_median), 0.9, size=n)),
                     1, cfg.dupes_max).astype(int)
    originals, duplicates = [], []
    for faq_index, ((task, subject), count) in enumerate(zip(faqs, counts)):
        hints = list(rng.permutation(TASKS[task]["hint"]))
        terms = _key_terms(rng, 5)
        text, answer = _original(writer, task, subject, hints, terms)
        faq_id = str(1000 + faq_index)
        originals.append((faq_id, text, answer))
        for k in range(count):
            duplicates.append((f"{faq_id}-{k}", faq_id,
                               _duplicate(writer, task, subject, hints, terms, vocabulary)))
    return RawCorpus(
        originals=pd.DataFrame(originals, columns=["id", "text", "answer"]),
        duplicates=pd.DataFrame(duplicates, columns=["id", "original_id", "text"]),
        source="synthetic",
        require_answers=True,
    )
