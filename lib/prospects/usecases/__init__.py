"""Related use cases on the same kind of data: churn insights, retention A/B tests, credit-card targets."""
