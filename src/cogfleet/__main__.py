from cogfleet.cli import run

run()
