"""Keras learning-rate schedules in ``optimizerOptions``, deserialised from JSON without running named code.

``optimizerOptions`` may give ``learning_rate`` as a schedule's serialised form::

    {"learning_rate": {"class_name": "ExponentialDecay",
                       "config": {"initial_learning_rate": 0.01, "decay_steps": 100, "decay_rate": 0.9}}}

``class_name`` is looked up only among the schedules that
``keras.optimizers.schedules`` exports (never imported or resolved by module
path, never a registered custom object); ``config`` holds the schedule's
keyword arguments. The parameter server's optimizer then follows the
schedule by its own step count, ``optimizer.iterations``: one step per applied
gradient (each push in ``hogwild`` / ``async``, each averaged round in
``sync``). With ``stepsPerSync > 1`` the server only adds weight changes, and
each worker's local optimizer follows the schedule by its own steps.
"""
from __future__ import annotations

import inspect
from typing import Any


def schedule_classes() -> dict[str, type]:
    """The ``LearningRateSchedule`` classes exported by ``keras.optimizers.schedules``, by name."""
    from keras.optimizers import schedules

    return {name: cls for name, cls in vars(schedules).items()
            if inspect.isclass(cls) and issubclass(cls, schedules.LearningRateSchedule)
            and cls is not schedules.LearningRateSchedule}


def resolve(kwargs: dict[str, Any], text: str) -> dict[str, Any]:
    """``kwargs`` with a serialised ``learning_rate`` schedule replaced by the schedule object.

    Parameters
    ----------
    kwargs : dict
        The parsed ``optimizerOptions``.
    text : str
        ``optimizerOptions`` as given, for error messages.

    Raises
    ------
    ValueError
        If ``learning_rate`` is an object that is not ``{"class_name": <a
        keras.optimizers.schedules class>, "config": {...}}`` or the config
        does not fit that class.
    """
    value = kwargs.get("learning_rate")
    if not isinstance(value, dict):
        return kwargs
    classes = schedule_classes()
    expected = (f'a number, or {{"class_name": <one of {", ".join(sorted(classes))}>, "config": {{...}}}}')
    name, config = value.get("class_name"), value.get("config", {})
    if set(value) - {"class_name", "config"} or name not in classes or not isinstance(config, dict):
        raise ValueError(f"Option optimizerOptions: learning_rate must be {expected}; other classes are refused. "
                         f"Received: optimizerOptions={text!r}")
    try:
        schedule = classes[name].from_config(config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Option optimizerOptions: the learning_rate config does not fit {name}: {e}. "
                         f"Received: optimizerOptions={text!r}") from e
    return {**kwargs, "learning_rate": schedule}
