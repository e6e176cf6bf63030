"""Models-from-code entry: MLflow runs this file to build the pyfunc, no pickled class."""

import mlflow

from faqtune.serving.pyfunc import FaqMatcherModel

mlflow.models.set_model(FaqMatcherModel())
