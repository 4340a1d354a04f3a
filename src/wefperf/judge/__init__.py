"""Judgement: the thresholds (parse, judge a run or a window) and the run's verdict."""
