"""Gradients through time, measured on the layers of nlpapps.

- `adding.py`: the adding problem (Hochreiter & Schmidhuber 1997), a seeded batch generator.
- `cells.py`: the recurrences compared (tanh RNN, IRNN, LSTM, GRU) and the adding model.
- `trainer.py`: one seeded training run on the adding problem, logged step by step.
- `norms.py`: the norm of dL_T/dh_{T-k} against k, taken with `tf.GradientTape`.
- `plots.py`: the figures (matplotlib, PNG).
"""
