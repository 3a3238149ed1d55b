"""What a space or supernet author runs to check their work, and the toy task keras-nas'
own tests train on.

- `toy_task`: `OneOpSpace` and `diagonal_task`, a task only one op can solve, for checking
  that a one-shot search picks it.
"""
