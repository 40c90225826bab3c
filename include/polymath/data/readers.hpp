// polymath/data/readers.hpp — every data-file reader of polymath::data:
// IDX (MNIST, Fashion-MNIST), CIFAR-10 binary batches, WAV PCM16 and its
// log-mel spectrogram, CSV with missing values, line-aligned text. All read
// raw or gzip input (data/gzip.hpp) and throw polymath::Error naming the file
// and the byte offset on corrupt input.
#pragma once

#include "audio.hpp"
#include "cifar.hpp"
#include "csv.hpp"
#include "gzip.hpp"
#include "idx.hpp"
#include "text.hpp"
#include "wav.hpp"
