#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run it.
# Debian packages: FluidSynth and its GM SoundFont (renders), PortAudio and PulseAudio (a real
# capture device with no sound card). Python packages go into .venv with the train and test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(fluidsynth fluid-soundfont-gm libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins)
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
.venv/bin/pip install -q -e ".[train,test]"
.venv/bin/mypy rtmer  # the runtime package, strict (pyproject.toml)
.venv/bin/python -m pytest -q "$@"
