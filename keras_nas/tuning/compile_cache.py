"""JAX's persistent compilation cache for a search (issue 18).

On JAX a short trial is mostly compilation: XLA compiles each new model's training and
evaluation steps (once per batch shape), and, once per process, the random-number kernel of
each weight initializer per weight shape. On digits that was 88% of a trial's seconds
(`docs/BENCHMARKS.md` §5). What Keras compiled cannot be reused in memory from one trial to the
next: XLA specializes a program to its graph, so two architectures (other operations on an
edge) are two programs, and even two models of one architecture get two jitted functions,
because Keras makes a new one per model and JAX's in-memory cache is keyed by the function.

JAX's persistent cache is keyed by the program itself (its text, without names or locations),
so a step compiled before is read from disk instead: the same architecture in a later
trial, the best architecture's retraining, a resumed or re-run search, a worker process
compiling what another compiled, and the initializers' kernels of every later search. The
first run of a search writes its entries (3.7 MB for a 6-trial digits search); later runs of it
measured 4.2-5.2 s a trial against 12.9-19.4 s without the cache (TensorFlow: 6.0-9.1 s).

`use_jax_compilation_cache` turns it on for this process unless JAX's own setting says
otherwise; `Search(compilation_cache="auto")`, the default, calls it on JAX:

    use_jax_compilation_cache("auto")    # ~/.cache/keras_nas/jax (or $XDG_CACHE_HOME/...)
    use_jax_compilation_cache("/tmp/c")  # that folder
"""

import os
import warnings

#: Programs that compiled in less than this are not written to the cache (JAX's default is
#: 1 s; the weight initializers' kernels take 0.5-1.5 s each on a 2-core machine).
MIN_COMPILE_TIME_S = 0.5


def default_directory():
    """`$XDG_CACHE_HOME/keras_nas/jax`, by default `~/.cache/keras_nas/jax` (where keras-nas
    keeps its other per-user caches)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "keras_nas", "jax")


def check_setting(setting):
    """`"auto"`, None / False (off), or a folder path; anything else is a `ValueError`."""
    if setting is None or setting is False or setting == "auto":
        return None if setting is False else setting
    if isinstance(setting, (str, os.PathLike)) and str(setting):
        return os.fspath(setting)
    raise ValueError("`compilation_cache` must be 'auto', None or a folder path, "
                     f"got {setting!r}.")


def use_jax_compilation_cache(setting="auto", backend=None):
    """Points JAX's persistent compilation cache at a folder for the rest of this process.

    Args:
        setting: `"auto"` (the default folder, `default_directory()`), a folder path, or None
            (do nothing).
        backend: the Keras backend (default: `keras.backend.backend()`); on any other than
            JAX nothing is done.

    Returns:
        The cache folder JAX uses from now on, or None when none: not JAX, `setting` None,
        caching turned off in JAX (`jax_enable_compilation_cache`), or the folder could not
        be made (a warning says so; the search runs without the cache). A folder JAX was
        already given (`JAX_COMPILATION_CACHE_DIR`, `jax.config`) is kept, and returned.
    """
    setting = check_setting(setting)
    if backend is None:
        import keras

        backend = keras.backend.backend()
    if setting is None or backend != "jax":
        return None
    import jax

    if not jax.config.jax_enable_compilation_cache:
        return None
    if jax.config.jax_compilation_cache_dir:  # the user's own choice wins
        return jax.config.jax_compilation_cache_dir
    directory = default_directory() if setting == "auto" else os.path.abspath(setting)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        warnings.warn(f"keras-nas: JAX's compilation cache is off: cannot make {directory!r} "
                      f"({e.strerror or e}).", stacklevel=2)
        return None
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_compilation_cache_dir", directory)
    if jax.config.jax_persistent_cache_min_compile_time_secs > MIN_COMPILE_TIME_S:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    # JAX decides once per process, at its first compilation, whether a cache is used;
    # anything compiled before this call (a model built earlier) made it decide "no".
    compilation_cache.reset_cache()
    return directory
