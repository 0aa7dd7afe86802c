"""Sizes, pauses and settings that the benchmark sections share."""

#: Layer widths of the benchmark MLP.
ARCH = (784, 256, 128, 10)
BATCHES = (32, 128, 1024)
PREDICT_BATCHES = (1, 1024)
QUICK_BATCHES = (8,)
QUICK_PREDICT_BATCHES = (1, 64)
QUICK_SAMPLES = 512
QUICK_TRAIN_BATCHES = (32,)
#: The convnet of the ``--cnn`` table: image shape (NHWC), filters of its two
#: convolutions, their kernel size and the max pooling after each.
CNN_IMAGE = (28, 28, 1)
CNN_FILTERS = (32, 64)
CNN_KERNEL = 3
CNN_POOL = 2
CNN_BATCHES = (32, 128)
CNN_PREDICT_BATCH = 1024
QUICK_CNN_SAMPLES = 128
QUICK_CNN_BATCHES = (32,)
QUICK_CNN_PREDICT_BATCH = 32
#: Pause between contestants of the training benchmark (OpenBLAS threads spin ~0.1 s).
PAUSE_S = 0.3
#: Pause before each backend of each op case (their BLAS copies differ; see
#: :func:`pynn.bench.timing.blocked`).
OPS_PAUSE_S = 0.2
#: A contestant's status when its library cannot be imported.
NOT_INSTALLED = "not installed"
#: Learning rate of each optimizer, the same for every contestant.
LEARNING_RATES = {"sgd": 0.01, "adam": 0.001}
#: The IMDB-shaped classifier of the ``--rnn`` table: vocabulary, embedding width,
#: units of each recurrent layer, sequence length, samples per epoch (IMDB's training
#: set), batch sizes, and the batches timed per sample (an epoch is extrapolated).
RNN_VOCAB = 20_000
RNN_EMBED = 128
RNN_UNITS = 64
RNN_LENGTH = 200
RNN_SAMPLES = 25_000
RNN_BATCHES = (32, 128)
RNN_TIMED_STEPS = 4
QUICK_RNN_LENGTH = 20
QUICK_RNN_BATCHES = (8,)
QUICK_RNN_TIMED_STEPS = 2
#: The ``--custom`` table (issue 21): the tutorial MLP written three ways, its batches,
#: samples per epoch, and optimizer.
CUSTOM_BATCHES = (32, 128)
CUSTOM_SAMPLES = 16_384
CUSTOM_OPTIMIZER = "adam"
QUICK_CUSTOM_BATCHES = (32,)
