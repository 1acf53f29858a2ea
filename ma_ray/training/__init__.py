"""Training: trainers on Ray Train and the pure checkpoint policy they follow."""
