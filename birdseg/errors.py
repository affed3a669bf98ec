"""The error every reader of user data raises: bad input, named by file or folder and what is wrong with it."""


class DatasetError(ValueError):
    """Bad input data; the message names the file or folder and what is wrong."""
