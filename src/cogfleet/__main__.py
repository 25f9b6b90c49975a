from cogfleet._cli import main

raise SystemExit(main())
