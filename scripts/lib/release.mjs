// scripts/release — build, then pack what a server installs (`npm install -g ./baton-proxy-X.Y.Z.tgz`).
//
// The tarball is `npm pack` of this checkout (package.json "files" decides what goes in), repacked with:
// - a package.json without scripts, devDependencies or test settings: `prepare` runs tsc, which an installed
//   package has neither the sources nor the compiler for (npm 11 also warns about it on every install);
// - npm-shrinkwrap.json from package-lock.json (production entries only): a global install then gets exactly
//   the dependency tree the tests ran against, not whatever the version ranges resolve to that day.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const USAGE = `usage: scripts/release [--out DIR] [--version X.Y.Z] [--no-build]
  --out DIR        where the tarball goes (default: the current directory)
  --version X.Y.Z  stamp this version into the packed package.json only (a release candidate, a test build);
                   the checkout is not changed. Default: package.json's version
  --no-build       pack dist/ as it is (default: npm run build first)
`;

function parseArgs(argv) {
  const opt = { out: process.cwd(), version: null, build: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out' && argv[i + 1]) opt.out = path.resolve(argv[++i]);
    else if (a === '--version' && argv[i + 1]) opt.version = argv[++i];
    else if (a === '--no-build') opt.build = false;
    else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else {
      process.stderr.write(`release: unknown argument "${a}"\n${USAGE}`);
      process.exit(2);
    }
  }
  if (opt.version !== null && !/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(opt.version)) {
    process.stderr.write(`release: --version ${opt.version} is not a semver version like 1.2.3 or 1.2.3-rc.1\n`);
    process.exit(2);
  }
  return opt;
}

const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });

/** package-lock.json without the development tree, as npm-shrinkwrap.json for the installed package. */
function shrinkwrap(lock, pkg) {
  const packages = {};
  for (const [where, entry] of Object.entries(lock.packages)) {
    if (where === '') {
      const { devDependencies: _dev, ...root } = entry;
      packages[''] = { ...root, name: pkg.name, version: pkg.version };
    } else if (!entry.dev) {
      packages[where] = entry;
    }
  }
  return { ...lock, name: pkg.name, version: pkg.version, packages };
}

function main() {
  const opt = parseArgs(process.argv.slice(2));
  if (opt.build) npm(['run', 'build', '--silent'], REPO);
  if (!fs.existsSync(path.join(REPO, 'dist/lib/cli/main.js'))) {
    process.stderr.write('release: dist/lib is missing: run "npm run build" (or drop --no-build)\n');
    process.exit(1);
  }
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-release-'));
  try {
    // --ignore-scripts: the build above is the one we pack; prepare would run tsc a second time.
    const [first] = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', stage], REPO));
    execFileSync('tar', ['-xzf', path.join(stage, first.filename), '-C', stage]);
    const dir = path.join(stage, 'package');
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    delete pkg.scripts;
    delete pkg.devDependencies;
    delete pkg.tap;
    if (opt.version !== null) pkg.version = opt.version;
    // npm-packlist leaves a shrinkwrap out unless "files" names it.
    pkg.files = [...pkg.files, 'npm-shrinkwrap.json'];
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
    const lock = JSON.parse(fs.readFileSync(path.join(REPO, 'package-lock.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'npm-shrinkwrap.json'), JSON.stringify(shrinkwrap(lock, pkg), null, 2) + '\n');
    fs.mkdirSync(opt.out, { recursive: true });
    const [final] = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', opt.out], dir));
    const file = path.join(opt.out, final.filename);
    process.stdout.write(
      `${file}\n` +
        `  ${pkg.name}@${pkg.version}, ${final.entryCount} files, ${(final.size / 1024).toFixed(1)} KiB, ${final.integrity}\n` +
        `install or upgrade:  npm install -g ${file}\n` +
        `then, on a running daemon:  baton upgrade   (or: kill -USR2 $(cat PID_FILE), then WINCH and QUIT the old master)\n`,
    );
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

main();
