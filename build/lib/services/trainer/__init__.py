"""The FAL gateway: builds photo archives, submits trainings, never pays twice."""
