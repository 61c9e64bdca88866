# Entry points for people and CI. Each target is a thin wrapper over a script in scripts/.
.PHONY: packages ci-packages image check-image demo test

# Build the podwrangler .deb and .rpm into target/packages/ (needs cargo-deb, cargo-generate-rpm).
packages:
	scripts/build-packages.sh

# Lint and install-test the packages built by `make packages` (root; what CI runs).
ci-packages:
	scripts/ci-packages.sh

# Build the OCI image localhost/podwrangler:VERSION with buildah, FROM scratch (root; reuses the
# release binaries of `make packages`).
image:
	scripts/build-image.sh

# Run the image from its root file system and check it, the Kubernetes manifests and the compose
# files (root; what CI runs).
check-image:
	scripts/check-image.sh

demo:
	scripts/demo.sh

test:
	scripts/test.sh
