{
  description = "nixdock: build Docker/OCI images from Nix store closures, fast, cached, live";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      # nix build / nix profile install github:…/nixdock
      packages = forAllSystems (pkgs: rec {
        nixdock = import ./default.nix { inherit pkgs; };
        default = nixdock;
      });

      # nix run github:…/nixdock -- watch
      apps = forAllSystems (pkgs: {
        default = { type = "app"; program = "${self.packages.${pkgs.system}.nixdock}/bin/nixdock"; };
      });

      # nixdock.lib.${system}.buildLayeredImage { … }: a nixdock spec file, dockerTools' words.
      lib = forAllSystems (pkgs: import ./nix/lib.nix { inherit pkgs; });

      overlays.default = final: _prev: { nixdock = import ./default.nix { pkgs = final; }; };

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell { packages = [ pkgs.nodejs_20 pkgs.skopeo pkgs.podman ]; };
      });
    };
}
