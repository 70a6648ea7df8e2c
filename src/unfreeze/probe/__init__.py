"""Linear probes on every layer's frozen features, before a study spends compute: texts (`sequence`), tagged
words (`tokens`), and what both share (`common`: device, plot, top_k suggestion)."""
