from synthmix.cli import main

raise SystemExit(main())
