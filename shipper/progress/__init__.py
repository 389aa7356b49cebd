"""Learner progress in video tutorials: the fold's state, its store and the read-back API.

`reader.ProgressReader` answers "where did this learner stop", "how much of this course is done"
and "continue where you left off"; `api` turns that into the JSON endpoint's answers and `views`
into Django views and template-tag helpers. The fold itself (fold.py) runs in the rollup
job (shipper/reports/job.py). See docs/events.md.
"""

from .reader import CourseProgress, ProgressReader, TutorialProgress, learner_of
from .settings import ProgressConfig

__all__ = ["CourseProgress", "ProgressConfig", "ProgressReader", "TutorialProgress", "learner_of"]
