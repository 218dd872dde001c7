#!/bin/busybox sh
# /init of the ebpfpy test guest: mount what BPF tracing needs, run pytest on the
# copied checkout, report its exit status on the console, power off.
# /vm/env (exports) and /vm/args (shell-quoted pytest arguments) come from the host runner.
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
# devtmpfs has no /dev/fd, /dev/stdin, ...: udev makes them on a real system (tests read /dev/stdin)
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t tmpfs tmpfs /dev/shm
# /tmp stays part of the initramfs (already in RAM): a tmpfs over it would hide a checkout under /tmp
mkdir -p /tmp && chmod 1777 /tmp
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
hostname ebpfpy-vm
# Keep kernel chatter off the console so the pytest output stays readable.
echo 1 > /proc/sys/kernel/printk
ulimit -l unlimited 2>/dev/null
# The kernel starts init with 1024 open files (hard 4096); CI hosts allow far more,
# and wildcard probes (hundreds of perf events and links) need it.
ulimit -n 65536

. /vm/env
echo "EBPFPY-VM-GUEST kernel=$(uname -r) kprobe_pmu=$(cat /sys/bus/event_source/devices/kprobe/type 2>/dev/null || echo none) btf=$( [ -e /sys/kernel/btf/vmlinux ] && echo yes || echo no) cpus=$(nproc)"
cd "$EBPFPY_VM_PROJECT" || { echo "EBPFPY-VM-EXIT=126"; poweroff -f; }
eval "set -- $(cat /vm/args)"
echo "EBPFPY-VM-BEGIN"
python3 -m pytest "$@"
rc=$?
echo "EBPFPY-VM-EXIT=$rc"
sync
poweroff -f
