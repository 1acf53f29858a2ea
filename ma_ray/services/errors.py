"""The one error type of the service launcher: its message says what failed and what to do."""


class ServiceError(RuntimeError):
    """A service could not be fetched, started, reached or stopped."""
