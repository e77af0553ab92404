"""Serving: the pipeline, the HTTP guard, the registry (champion, model card), batch prediction and
evaluation."""
