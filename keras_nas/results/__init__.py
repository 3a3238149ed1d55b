"""What came out of a search: rewards and the Pareto front, analysis, figures, the report.

- `objectives`: latency-aware rewards and the non-dominated ranks (the one Pareto front).
- `analysis`: cells as graphs, their width and depth.
- `plots`: the figures; `report`: the page about a finished search.
"""
