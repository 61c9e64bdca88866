# Entry points for people and CI. Each target is a thin wrapper over a script in scripts/.
.PHONY: packages ci-packages demo test

# Build the podwrangler .deb and .rpm into target/packages/ (needs cargo-deb, cargo-generate-rpm).
packages:
	scripts/build-packages.sh

# Lint and install-test the packages built by `make packages` (root; what CI runs).
ci-packages:
	scripts/ci-packages.sh

demo:
	scripts/demo.sh

test:
	scripts/test.sh
