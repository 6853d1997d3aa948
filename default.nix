# nixdock as a Nix package: `nix-build` here, `nix-env -if .`, or through flake.nix
# (`nix run github:…/nixdock`, `nix profile install`). Needs nixpkgs; the npm dependencies come
# from package-lock.json through importNpmLock, so no hash has to be kept in step with it.
{ pkgs ? import <nixpkgs> { } }:
let
  packageJson = builtins.fromJSON (builtins.readFile ./package.json);
in
pkgs.buildNpmPackage {
  pname = "nixdock";
  inherit (packageJson) version;
  src = pkgs.lib.cleanSourceWith {
    src = ./.;
    filter = path: type: !(builtins.elem (baseNameOf path) [ "node_modules" "out" ".nixdock" "dist" "result" ]);
  };
  nodejs = pkgs.nodejs_20;
  npmDeps = pkgs.importNpmLock { npmRoot = ./.; };
  npmConfigHook = pkgs.importNpmLock.npmConfigHook;
  # better-sqlite3 compiles its native module with node-gyp.
  nativeBuildInputs = [ pkgs.python3 pkgs.makeWrapper ];
  makeCacheWritable = true;
  # `npm run build` (the default) compiles dist/ and bundles the CLI; the tests need podman,
  # skopeo and a registry, so they run in CI, not here.
  doCheck = false;
  # nixdock runs the nix CLI to realise installables; keep the user's own nix first on PATH.
  postInstall = ''
    wrapProgram $out/bin/nixdock --suffix PATH : ${pkgs.lib.makeBinPath [ pkgs.nix ]}
  '';
  # The Nix library (dockerTools-named functions writing nixdock spec files) ships with it.
  passthru.lib = import ./nix/lib.nix { inherit pkgs; };
  meta = {
    description = packageJson.description;
    license = pkgs.lib.licenses.mit;
    mainProgram = "nixdock";
    platforms = pkgs.lib.platforms.linux ++ pkgs.lib.platforms.darwin;
  };
}
