"""Entry file for MLflow's "models from code": the served model is defined here, not cloudpickled."""

import mlflow

from crossemo.serving.pyfunc import ValencePyfunc

mlflow.models.set_model(ValencePyfunc())
