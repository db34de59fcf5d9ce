"""Pretraining on Lightning: module, optimisation, monitors and the run driver."""
