"""`python -m horae_conformance` is the `horae-conformance` command."""

from horae_conformance.cli import main

raise SystemExit(main())
