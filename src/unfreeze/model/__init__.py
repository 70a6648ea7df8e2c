"""The model: an encoder found structurally for any architecture (`backbone`), our head on top (`heads`), saving
and loading a trained model (`checkpoint`), and prediction with it (`predict`, `predict_tokens`)."""
