"""Serves no mode at all."""


def wrapperInit(config):
    return 0
