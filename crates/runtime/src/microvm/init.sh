#!/bin/sh
# berth's microVM init (rdinit=/init). Its console lines starting with "@@berth " are
# the control channel to the host's VM supervisor; the supervisor writes signal names
# to the console, which this script passes to the container with `runc kill`.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /run; mount -t tmpfs tmp /tmp; mount -t cgroup2 cgroup2 /sys/fs/cgroup
say() { echo "@@berth $*"; }
IFS=,; set -- $berth_modules; unset IFS
for m in "$@"; do insmod "/mod/$m.ko" || say "FAILED loading module $m"; done
IFS=,; set -- $berth_shares; unset IFS
for t in "$@"; do
  mkdir -p "/vm/$t"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 "$t" "/vm/$t" || say "FAILED mounting share $t"
done
ip link set lo up
if [ -n "$berth_ip" ]; then
  ip link set eth0 up && ip addr add "$berth_ip" dev eth0 && ip route add default via "$berth_gw" ||
    say "FAILED configuring eth0 as $berth_ip via $berth_gw"
fi
stty raw -echo 2>/dev/null
say READY
if [ -n "$berth_probe" ]; then poweroff -f; fi
b=/vm/bundle/vm
runc --root /run/runc --log $b/runc.log --log-format json run --no-pivot --bundle $b "$berth_id" </dev/null >$b/stdout 2>$b/stderr &
run=$!
while kill -0 $run 2>/dev/null; do
  case "$(runc --root /run/runc state "$berth_id" 2>/dev/null)" in
    *'"status": "running"'*) say STARTED; break;;
  esac
  sleep 0.05
done
(while read -r sig; do runc --root /run/runc kill "$berth_id" "$sig"; done) </dev/console &
wait $run
say "EXIT $?"
sync
poweroff -f
