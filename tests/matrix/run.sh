#!/usr/bin/env bash
# The kernel matrix: the kernel tests listed in tests/matrix/selection.txt, run inside QEMU on each
# Debian kernel with `corebpf vmtest`. The host kernel's column is the normal suite (./dev test), which
# runs every kernel test natively.
#
#   tests/matrix/run.sh                      # debian:5.10 debian:6.1 debian:6.12
#   tests/matrix/run.sh debian:6.12 /boot/vmlinuz-6.1.0-28-amd64
#   tests/matrix/run.sh -- -k ringbuf        # extra pytest arguments after --
#
# Environment: MATRIX_VMTEST=0 skips the host-side VM acceptance tests (vmtest's own slow cases and
# compat against real loads in each kernel; run first),
# MATRIX_JOBS (VMs at once; default 2 = one per host core, each VM gets 1 vCPU),
# MATRIX_TIMEOUT (seconds per kernel; default 1500), MATRIX_MEMORY (MiB per VM; default 2048),
# COREBPF_KERNEL_CACHE (where Debian kernel packages are cached; default /var/cache/corebpf/kernels).
# Exit status: 0 when the selection passed on every kernel, 1 otherwise (the summary table says where).
set -euo pipefail
cd "$(dirname "$0")/../.."
corebpf=${COREBPF:-.venv/bin/corebpf}
python=${PYTHON:-.venv/bin/python}

specs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do specs+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#specs[@]} -gt 0 ] || specs=(debian:5.10 debian:6.1 debian:6.12)

mapfile -t tests < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' tests/matrix/selection.txt | grep -v '^$')
kernel_args=()
for spec in "${specs[@]}"; do kernel_args+=(-k "$spec"); done

start=$(date +%s)
set +e
vm_rc=0
if [ "${MATRIX_VMTEST:-1}" = 1 ]; then
  # vmtest's own slow acceptance cases (CLI exit codes on 5.10, a hanging command, a kernel that does
  # not boot), skipped in the normal suite for time.
  echo "== vmtest acceptance tests (host side)"
  COREBPF_VM_TESTS=all "$python" -m pytest -q -p no:cacheprovider -rfEs tests/kernel/test_vmtest.py || vm_rc=$?
  # compat's verdicts against each kernel's BTF equal real loads of the corpus inside that kernel
  echo "== compat vs real loads in the VMs (host side)"
  COREBPF_VM_TESTS=$(IFS=,; echo "${specs[*]}") "$python" -m pytest -q -p no:cacheprovider -rfEs \
    tests/kernel/test_compat_vm.py || vm_rc=$?
fi
echo "== kernel matrix: ${specs[*]}"
"$corebpf" vmtest "${kernel_args[@]}" --jobs "${MATRIX_JOBS:-2}" --timeout "${MATRIX_TIMEOUT:-1500}" \
  --memory "${MATRIX_MEMORY:-2048}" -- \
  "$python" -m pytest -q -p no:cacheprovider -rfEs --durations=5 "${tests[@]}" "$@"
rc=$?
set -e
[ $rc -ne 0 ] || rc=$vm_rc
echo "kernel matrix: ${#specs[@]} kernel(s) in $(( $(date +%s) - start )) s, exit $rc"
exit $rc
