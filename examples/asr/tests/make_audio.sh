#!/usr/bin/env bash
# Regenerate the test audio: English speech from espeak-ng, as 16 kHz 16-bit mono little-endian raw
# PCM (what the asr example takes), with 0.3 s of silence either side. Needs espeak-ng and sox
# (Debian: apt-get install espeak-ng sox). The tests use the committed .pcm files, not this script;
# sox -D (no dither) makes its output reproducible.
#
# Voice en-us at 160 words/min. pocketsphinx's default English model, with a fresh decoder per
# session (its cepstral normalisation starts from the model's defaults), gets "hello world" word for
# word and the first three words of the coffee sentence ("i would like ..."); digits and most other
# phrases tried come out wrong from this synthetic voice. The tests assert on those words only.
set -euo pipefail
cd "$(dirname "$0")"
make() {
  local name=$1 text=$2 tmp
  tmp=$(mktemp --suffix=.wav)
  espeak-ng -v en-us -s 160 -w "$tmp" "$text"
  sox "$tmp" -D -r 16000 -c 1 -b 16 -e signed-integer -L -t raw "$name.pcm" pad 0.3 0.3
  rm -f "$tmp"
  echo "$name.pcm: $(stat -c %s "$name.pcm") bytes"
}
make hello_world "hello world"
make coffee "i would like a cup of coffee"
