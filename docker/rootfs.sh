#!/bin/sh
# Lays out the image's root filesystem in $2 from $1/dockline and $1/dockline.toml: the
# binary stripped and given its file capabilities, the shared libraries it links (found
# with ldd, so a new dependency on a C library cannot be forgotten), the dockline user,
# the default config, and the directories the daemon writes to.
set -eu
in=$1 out=$2
install -d "$out/usr/local/bin" "$out/etc/dockline" "$out/tmp"
install -d -o 10001 -g 10001 "$out/run/dockline"
chmod 1777 "$out/tmp"
strip --strip-all -o "$out/usr/local/bin/dockline" "$in/dockline"
# Permitted only: without the effective bit, exec still works in a container that was not
# granted them, so `dockline doctor` can say what is missing.
setcap cap_net_admin,cap_net_raw,cap_net_bind_service=p "$out/usr/local/bin/dockline"
for lib in $(ldd "$in/dockline" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    cp -L --parents "$lib" "$out"
done
install -m 0644 "$in/dockline.toml" "$out/etc/dockline/dockline.toml"
echo "root:x:0:0:root:/root:/sbin/nologin" > "$out/etc/passwd"
echo "dockline:x:10001:10001:dockline:/nonexistent:/sbin/nologin" >> "$out/etc/passwd"
printf 'root:x:0:\ndockline:x:10001:\n' > "$out/etc/group"
