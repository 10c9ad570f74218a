#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run it.
# Debian packages: FluidSynth and its GM SoundFont (renders), PortAudio and PulseAudio (a real
# capture device with no sound card), Chromium (the live web page, headless) and Pure Data's core
# (the Pd patch in clients/, with no GUI). Python packages go into .venv with the train, test
# and plot extras.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(fluidsynth fluid-soundfont-gm libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins chromium
          puredata-core)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e ".[train,test,plot]"
.venv/bin/mypy rtmer  # the runtime package, strict (pyproject.toml)
.venv/bin/python -m pytest -q "$@"
