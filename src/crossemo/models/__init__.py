"""Models: the estimator interface, the baselines, the RBM and DBN nets, the Lightning loops that train
them, the stack cache."""
