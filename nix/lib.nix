# nixdock's Nix library: dockerTools-named functions that turn dockerTools-style arguments into
# a nixdock spec file instead of an image. The result is a derivation whose output is the JSON
# spec; the store paths it names (contents, Cmd, …) are its references, so building the spec
# builds everything the image needs. Change `dockerTools.buildLayeredImage` to
# `nixdock.buildLayeredImage`, build it with `-o nixdock-app.json`, and point `specs:` at that
# link; `nixdock build` / `nixdock watch` make the image (watch rebuilds when the link moves).
#
#   let nixdock = import ./nix/lib.nix { inherit pkgs; };
#   in nixdock.buildLayeredImage { name = "hello"; contents = [ pkgs.hello ]; config.Cmd = [ "/bin/hello" ]; }
#
# Without `pkgs` the spec is written by a raw derivation with /bin/sh as its builder, which
# needs a Nix without a build sandbox (as nix-bin on Debian is by default); with `pkgs` it is
# pkgs.writeText, which works anywhere.
{ pkgs ? null, system ? builtins.currentSystem }:
let
  # dockerTools arguments that mean something else (or nothing) in a nixdock spec, per shape:
  # buildLayeredImage's contents are linked into the root (a layer per store path); buildImage's
  # copyToRoot (`contents` in older nixpkgs) is copied into one layer, with keepContentsDirlinks.
  commonDropped = [ "compressor" "diskSize" "buildVMMemorySize" "meta" "passthru" ];
  layered = { renamed = { copyToRoot = "contents"; }; dropped = commonDropped ++ [ "keepContentsDirlinks" ]; };
  singleLayer = { renamed = { contents = "copyToRoot"; }; dropped = commonDropped; };

  # A base image: dockerTools takes an image tarball (a derivation or path); nixdock reads it as a docker-archive.
  fromImageOf = v: if builtins.isString v && (builtins.substring 0 4 v == "oci:" || builtins.substring 0 15 v == "docker-archive:")
    then v
    else "docker-archive:${toString v}";

  # contents may be one derivation or a list; every element becomes its store path.
  contentsOf = v: map toString (if builtins.isList v then v else [ v ]);

  translate = name: value:
    if name == "contents" || name == "copyToRoot" then contentsOf value
    else if name == "fromImage" then fromImageOf value
    else value;

  specOf = shape: args:
    let
      kept = builtins.filter (n: args.${n} != null && !(builtins.elem n shape.dropped)) (builtins.attrNames args);
      pairs = map (n: { name = shape.renamed.${n} or n; value = translate n args.${n}; }) kept;
    in builtins.listToAttrs pairs;
  toSpec = specOf layered;

  writeSpec = shape: args:
    let
      spec = specOf shape args;
      fileName = "${baseNameOf spec.name}-nixdock-spec.json";
      json = builtins.toJSON spec;
    in
    if pkgs != null then pkgs.writeText fileName json
    else derivation {
      name = fileName;
      inherit system json;
      builder = "/bin/sh";
      passAsFile = [ "json" ];
      args = [ "-c" "read -r line < \"$jsonPath\"; printf '%s' \"$line\" > \"$out\"" ];
    };
in
{
  # The layered two give the same kind of spec: nixdock decides the layering (maxLayers etc.).
  buildLayeredImage = writeSpec layered;
  streamLayeredImage = writeSpec layered;
  # buildImage's shape: copyToRoot, copied into one layer on fromImage.
  buildImage = writeSpec singleLayer;
  # The specs as Nix values, for inspection (`nix-instantiate --eval --strict -A toSpec …`).
  inherit toSpec;
  toBuildImageSpec = specOf singleLayer;
}
