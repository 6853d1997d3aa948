# A tiny closure built with raw `derivation`s: no nixpkgs, no network. The builders are the
# host's /bin/sh, and busybox is copied into the store from the host's /bin/busybox (Debian
# busybox-static), so the image carries its own shell and `cat`.
let
  mkDerivation = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
  };

  busybox = mkDerivation "busybox-static" ''
    export PATH=/usr/bin:/bin
    mkdir -p $out/bin
    cp /bin/busybox $out/bin/busybox
    for applet in sh cat echo ls; do ln -s busybox $out/bin/$applet; done
  '';

  greeting = mkDerivation "hello-greeting" ''
    export PATH=/usr/bin:/bin
    mkdir -p $out/share
    echo 'Hello from nixdock! This image was built from the real Nix store.' > $out/share/greeting
  '';
in
{
  inherit busybox greeting;

  # The app: a busybox shell script that prints the greeting. Its closure is all three paths,
  # because the script names busybox and greeting by their store paths.
  hello = mkDerivation "hello" ''
    export PATH=/usr/bin:/bin
    mkdir -p $out/bin
    printf '#!${busybox}/bin/sh\nexec ${busybox}/bin/cat ${greeting}/share/greeting\n' > $out/bin/hello
    chmod 555 $out/bin/hello
  '';
}
