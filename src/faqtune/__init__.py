"""faqtune: tune a FAQ-matching model and track every experiment."""

__version__ = "0.1.0"
