"""rtmer training: datasets, rendering, front end, models and the training loop."""
