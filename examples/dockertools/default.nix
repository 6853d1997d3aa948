# Raw `derivation`s (no nixpkgs, no network) for the dockerTools-style examples in
# nixdock.config.ts. Builders are the host's /bin/sh; busybox comes from Debian's busybox-static.
let
  mkDerivation = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
  };
in
rec {
  # A static shell and coreutils: the "bash shell image" of this example set.
  busybox = mkDerivation "busybox-static" ''
    export PATH=/usr/bin:/bin
    mkdir -p $out/bin
    cp /bin/busybox $out/bin/busybox
    for applet in sh ash cat echo ls id env mkdir touch printenv; do ln -s busybox $out/bin/$applet; done
  '';

  # A service that keeps state in /var/lib/counter, as redis or nginx keep theirs.
  counter = mkDerivation "counter" ''
    export PATH=/usr/bin:/bin
    mkdir -p $out/bin
    printf '#!${busybox}/bin/sh\nset -e\nn=$(${busybox}/bin/cat /var/lib/counter/n 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > /var/lib/counter/n\necho "run $n as $(${busybox}/bin/id -un)"\n' > $out/bin/counter
    chmod 555 $out/bin/counter
  '';

  # layeredStoreSymlink: a store path that is itself a symlink to a directory.
  busyboxLink = mkDerivation "busybox-link" ''
    export PATH=/usr/bin:/bin
    ln -s ${busybox} $out
  '';

  # nix-store from the host's nix-bin with the libraries it links, run by their own loader, so
  # an image can verify its Nix database without nixpkgs.
  nixStore = mkDerivation "nix-store-portable" ''
    export PATH=/usr/bin:/bin
    mkdir -p $out/bin $out/lib $out/libexec
    cp /usr/bin/nix-store $out/libexec/nix-store
    for lib in $(ldd /usr/bin/nix-store | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }'); do cp -L "$lib" $out/lib/; done
    printf '#!${busybox}/bin/sh\nexec %s/lib/ld-linux-x86-64.so.2 --library-path %s/lib %s/libexec/nix-store "$@"\n' $out $out $out > $out/bin/nix-store
    chmod 555 $out/bin/nix-store
  '';
}
