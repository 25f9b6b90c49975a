from cogfleet.cli import main

raise SystemExit(main())
