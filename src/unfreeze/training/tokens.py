"""Token-task glue, moved to `tasks/token.py`; re-exported here for `training/evaluate.py` until it asks the task
(`get_task(config.task).split_metrics`)."""
from unfreeze.tasks.token import fbeta_of, token_task_metrics, write_tag_predictions, write_token_predictions

__all__ = ["fbeta_of", "token_task_metrics", "write_tag_predictions", "write_token_predictions"]
