"""Test-only code: synthetic athletes, other models' keypoints, page fixtures. Never shipped."""
