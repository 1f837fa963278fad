#!/usr/bin/env bash
# pinned_venv DIR REQUIREMENTS: makes the virtualenv DIR hold what the pinned REQUIREMENTS file
# names. Idempotent: reinstalls only when that file changes (its sha256 is kept in DIR).
pinned_venv() {
  local venv="$1" requirements="$2"
  local stamp="$venv/.requirements.sha256"
  local want
  want="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ]; then
    echo "tools: creating $venv"
    python3 -m venv "$venv"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "tools: installing the pinned tools of $(basename "$requirements") (first run takes a few minutes)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
  fi
}
