"""What a run tells people: the model card, plots, the HTML report and comparisons across runs."""
