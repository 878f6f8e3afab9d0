"""Exit statuses shared by every subcommand."""

EXIT_OK = 0
EXIT_FAILURE = 1  # the daemon could not start, or streams could not be read
EXIT_CONFIG = 2  # bad command line or bad config
