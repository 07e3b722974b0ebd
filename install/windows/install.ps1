<#
.SYNOPSIS
  Install gatekey on Windows: a virtual environment in %ProgramFiles%\gatekey, the helper at
  %ProgramFiles%\gatekey\Scripts\gatekey.exe, the system config in %ProgramData%\gatekey\config.toml.

.DESCRIPTION
  -Bundle FILE installs the self-contained bundle instead (install/build-bundle.sh's .zip, built on
  Windows: no Python needed): its SHA-256 is checked (FILE.sha256 or -Sha256) with Get-FileHash
  before it is unpacked into <Prefix>\bin, and the helper is "<Prefix>\bin\gatekey.exe".

  Run elevated (Intune Win32 app / Group Policy startup script run as SYSTEM). Re-running upgrades
  in place and keeps the installed config unless -Config is given. -Uninstall removes the virtual
  environment; -Purge also removes the config. The executable for inferenceCredentialHelper is
  "<Prefix>\Scripts\gatekey.exe" (a console-script launcher: the app can run an .exe directly).

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File install.ps1 -Wheelhouse .\wheelhouse -Config .\corp.toml
.EXAMPLE
  powershell -ExecutionPolicy Bypass -File install.ps1 -Bundle .\gatekey-0.1.0-windows-x86_64.zip -Config .\corp.toml
.EXAMPLE
  powershell -ExecutionPolicy Bypass -File install.ps1 -Uninstall -Purge
#>
[CmdletBinding()]
param(
  [string]$Bundle,
  [string]$Sha256,
  [string]$Wheel,
  [string]$Wheelhouse,
  [string]$IndexUrl,
  [string]$Config,
  [string]$Python,
  [string]$Prefix = (Join-Path $env:ProgramFiles 'gatekey'),
  [string]$ConfigDir = (Join-Path $env:ProgramData 'gatekey'),
  [switch]$Uninstall,
  [switch]$Purge
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

function Say([string]$Message) { [Console]::Error.WriteLine("install.ps1: $Message") }
function Fail([string]$Message) { Say "error: $Message"; exit 1 }

$DefaultPrefix = Join-Path $env:ProgramFiles 'gatekey'
$DefaultConfigDir = Join-Path $env:ProgramData 'gatekey'
$SystemConfig = Join-Path $DefaultConfigDir 'config.toml'   # what gatekey reads (paths.py)
$Prefix = [IO.Path]::GetFullPath($Prefix)
$ConfigDir = [IO.Path]::GetFullPath($ConfigDir)
$ConfigDest = Join-Path $ConfigDir 'config.toml'
$Manifest = Join-Path $Prefix '.gatekey-install'
$VenvPy = Join-Path $Prefix 'Scripts\python.exe'
$Gatekey = Join-Path $Prefix 'Scripts\gatekey.exe'
# What is installed at the prefix: a virtual environment, or a bundle (marked by this file, the
# same name install-unix.sh uses), whose folder becomes <Prefix>\bin.
$BundleMark = Join-Path $Prefix '.gatekey-bundle'
$BundleBin = Join-Path $Prefix 'bin'
if ($Bundle) { $Gatekey = Join-Path $BundleBin 'gatekey.exe' }

$IsAdmin = ([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()).IsInRole(
  [Security.Principal.WindowsBuiltInRole]::Administrator)
if (-not $IsAdmin) {
  if ($Prefix -eq $DefaultPrefix -or $ConfigDir -eq $DefaultConfigDir) {
    Fail "run elevated (as Administrator or SYSTEM) to change $DefaultPrefix and $DefaultConfigDir"
  }
  Say "warning: not elevated; the files stay writable by $env:USERNAME (fine for a trial, not a fleet)"
}

# Administrators and SYSTEM: full control; everyone else (Users): read and execute. Inheritance
# from the parent is cut so a permissive parent cannot make the helper or its config writable.
function Lock-Down([string]$Path) {
  if (-not $IsAdmin) { return }
  $acl = New-Object Security.AccessControl.DirectorySecurity
  if (Test-Path -LiteralPath $Path -PathType Leaf) { $acl = New-Object Security.AccessControl.FileSecurity }
  $acl.SetAccessRuleProtection($true, $false)
  $admins = New-Object Security.Principal.SecurityIdentifier('S-1-5-32-544')
  $system = New-Object Security.Principal.SecurityIdentifier('S-1-5-18')
  $users = New-Object Security.Principal.SecurityIdentifier('S-1-5-32-545')
  $acl.SetOwner($admins)
  $inherit = 'ContainerInherit, ObjectInherit'
  if ($acl -is [Security.AccessControl.FileSecurity]) { $inherit = 'None' }
  foreach ($rule in @(
      @($admins, 'FullControl'), @($system, 'FullControl'), @($users, 'ReadAndExecute'))) {
    $acl.AddAccessRule((New-Object Security.AccessControl.FileSystemAccessRule(
          $rule[0], $rule[1], $inherit, 'None', 'Allow')))
  }
  Set-Acl -LiteralPath $Path -AclObject $acl
}

# --- uninstall --------------------------------------------------------------------------------
if ($Uninstall) {
  if ($Wheel -or $Wheelhouse -or $Config -or $IndexUrl -or $Bundle) { Fail '-Uninstall takes no -Wheel, -Wheelhouse, -IndexUrl, -Bundle or -Config' }
  if (Test-Path -LiteralPath $Manifest) {
    $recorded = (Get-Content -LiteralPath $Manifest | Where-Object { $_ -like 'config_dir=*' } | Select-Object -Last 1)
    if ($recorded) { $ConfigDir = $recorded.Substring(11); $ConfigDest = Join-Path $ConfigDir 'config.toml' }
  }
  if (Test-Path -LiteralPath $Prefix) {
    $what = 'the virtual environment'
    if (Test-Path -LiteralPath $BundleMark) { $what = 'the bundle' }
    Remove-Item -LiteralPath $Prefix -Recurse -Force
    Say "removed $what $Prefix"
  } else {
    Say "nothing installed at $Prefix"
  }
  if (Test-Path -LiteralPath $ConfigDest) {
    if ($Purge) {
      Remove-Item -LiteralPath $ConfigDest -Force
      Say "removed $ConfigDest"
      if (-not (Get-ChildItem -LiteralPath $ConfigDir -Force)) { Remove-Item -LiteralPath $ConfigDir -Force }
    } else {
      Say "kept $ConfigDest (-Purge removes it)"
    }
  }
  exit 0
}
if ($Purge) { Fail '-Purge goes with -Uninstall' }
if ($Bundle -and ($Wheel -or $Wheelhouse -or $IndexUrl -or $Python)) {
  Fail '-Bundle brings its own Python: it takes no -Wheel, -Wheelhouse, -IndexUrl or -Python'
}
if ($Sha256 -and -not $Bundle) { Fail '-Sha256 goes with -Bundle' }

# --- checks before anything changes -------------------------------------------------------------
# gatekey is not on PyPI yet: a "gatekey" there is not this project's, so it is never asked for.
if (-not $Wheel -and -not $Wheelhouse -and -not $IndexUrl -and -not $Bundle) {
  Fail 'say where gatekey comes from: -Wheel FILE or -Wheelhouse DIR (install/build-wheelhouse.sh makes one), or -IndexUrl URL of an index that hosts your gatekey build (gatekey is not on PyPI yet)'
}
if ($Wheel) {
  if (-not (Test-Path -LiteralPath $Wheel -PathType Leaf)) { Fail "no such wheel file: $Wheel" }
  if ($Wheel -notlike '*.whl') { Fail "-Wheel needs a .whl file: $Wheel" }
  $Wheel = (Resolve-Path -LiteralPath $Wheel).Path
}
if ($Wheelhouse) {
  if (-not (Test-Path -LiteralPath $Wheelhouse -PathType Container)) { Fail "no such wheelhouse directory: $Wheelhouse" }
  $Wheelhouse = (Resolve-Path -LiteralPath $Wheelhouse).Path
  # Every wheel is installed by its SHA-256 (pip --require-hashes): a wheelhouse without its list
  # is refused rather than installed unchecked.
  if (-not (Test-Path -LiteralPath (Join-Path $Wheelhouse 'requirements.txt') -PathType Leaf)) {
    Fail "$Wheelhouse has no requirements.txt (the SHA-256 of every wheel); build it with install/build-wheelhouse.sh"
  }
}
if ($Config) {
  if (-not (Test-Path -LiteralPath $Config -PathType Leaf)) { Fail "cannot read the config file: $Config" }
  $Config = (Resolve-Path -LiteralPath $Config).Path
}

# --- a bundle (install/build-bundle.sh): verified, unpacked to <Prefix>\bin, no Python ---------
function Install-Bundle {
  if (-not (Test-Path -LiteralPath $Bundle -PathType Leaf)) { Fail "no such bundle file: $Bundle" }
  if ($Bundle -notlike '*.zip') { Fail "-Bundle needs the .zip install/build-bundle.sh writes on Windows: $Bundle" }
  $script:Bundle = (Resolve-Path -LiteralPath $Bundle).Path
  $want = $Sha256
  if (-not $want) {
    $sums = "$Bundle.sha256"
    if (-not (Test-Path -LiteralPath $sums -PathType Leaf)) { Fail "no $sums to check the bundle against; pass -Sha256 HEX" }
    $want = ((Get-Content -LiteralPath $sums -TotalCount 1) -split '\s+')[0]
  }
  # The archive's hash before anything is unpacked.
  $got = (Get-FileHash -LiteralPath $Bundle -Algorithm SHA256).Hash.ToLowerInvariant()
  if ($want.ToLowerInvariant() -ne $got) {
    Fail "$Bundle does not match its SHA-256 (expected $want, got $got); not installed"
  }
  Say "verified $(Split-Path -Leaf $Bundle) (sha256 $got)"
  if ((Test-Path -LiteralPath $Prefix) -and -not (Test-Path -LiteralPath (Join-Path $Prefix 'pyvenv.cfg')) -and
    -not (Test-Path -LiteralPath $BundleMark) -and (Get-ChildItem -LiteralPath $Prefix -Force)) {
    Fail "$Prefix exists and is not a gatekey installation; choose another -Prefix"
  }
  New-Item -ItemType Directory -Force -Path $Prefix | Out-Null
  $staging = Join-Path $Prefix '.bundle.new'
  if (Test-Path -LiteralPath $staging) { Remove-Item -LiteralPath $staging -Recurse -Force }
  try {
    Expand-Archive -LiteralPath $Bundle -DestinationPath $staging
  } catch {
    Remove-Item -LiteralPath $staging -Recurse -Force -ErrorAction SilentlyContinue
    Fail "cannot unpack ${Bundle}: $($_.Exception.Message)"
  }
  # The archive holds one folder, gatekey-<version>-windows-<arch>\, with gatekey.exe in it.
  $folders = @(Get-ChildItem -LiteralPath $staging -Directory -Filter 'gatekey-*' |
      Where-Object { Test-Path -LiteralPath (Join-Path $_.FullName 'gatekey.exe') -PathType Leaf })
  if ($folders.Count -ne 1) {
    Remove-Item -LiteralPath $staging -Recurse -Force
    Fail "$Bundle holds no gatekey-<version>\gatekey.exe"
  }
  $folder = $folders[0].FullName
  & (Join-Path $folder 'gatekey.exe') version *> $null
  if ($LASTEXITCODE -ne 0) {
    Remove-Item -LiteralPath $staging -Recurse -Force
    Fail "the bundle's gatekey.exe does not run on this machine"
  }
  if (Test-Path -LiteralPath (Join-Path $Prefix 'pyvenv.cfg')) {
    Say "replacing the virtual environment $Prefix with the bundle"
    foreach ($entry in @('Scripts', 'Lib', 'Include', 'share', 'pyvenv.cfg')) {
      $path = Join-Path $Prefix $entry
      if (Test-Path -LiteralPath $path) { Remove-Item -LiteralPath $path -Recurse -Force }
    }
  } elseif (Test-Path -LiteralPath $BundleBin) {
    Say "upgrading the bundle in place: $Prefix"
  }
  # The old bin goes aside first, the new one takes its name: a run in between finds one or the
  # other, never half of each.
  $old = Join-Path $Prefix '.bin.old'
  if (Test-Path -LiteralPath $old) { Remove-Item -LiteralPath $old -Recurse -Force }
  if (Test-Path -LiteralPath $BundleBin) { Move-Item -LiteralPath $BundleBin -Destination $old }
  Move-Item -LiteralPath $folder -Destination $BundleBin
  Remove-Item -LiteralPath $staging -Recurse -Force
  if (Test-Path -LiteralPath $old) { Remove-Item -LiteralPath $old -Recurse -Force }
  Set-Content -LiteralPath $BundleMark -Value (Split-Path -Leaf $folder)
}

if ($Bundle) {
  Install-Bundle
} else {
  # The interpreter: a real, machine-wide Python 3.10+ (python.org's installer "for all users", or
  # the MDM's package). Not the Microsoft Store alias (per-user, under WindowsApps), not a pyenv-win
  # shim, not a per-user install under a profile (users could replace it).
  $probe = 'import os, sys; assert sys.version_info >= (3, 10); print(os.path.realpath(sys.executable))'
  $candidates = @()
  if ($Python) { $candidates = @(, @($Python)) } else { $candidates = @(@('py', '-3'), @('python')) }
  $Py = $null
  foreach ($cand in $candidates) {
    $exe = $cand[0]; $rest = @($cand | Select-Object -Skip 1)
    if (-not (Get-Command $exe -ErrorAction SilentlyContinue)) { continue }
    try { $out = & $exe @rest -c $probe 2>$null } catch { continue }
    if ($LASTEXITCODE -eq 0 -and $out) { $Py = ($out | Select-Object -Last 1).Trim(); break }
  }
  if (-not $Py) { Fail 'gatekey needs Python 3.10 or newer, installed for all users; install it or pass -Python' }
  if ($Py -like '*\WindowsApps\*' -or $Py -like '*\shims\*') { Fail "$Py is a per-user alias or shim; pass a machine-wide interpreter with -Python" }
  if ($Py -like "$env:SystemDrive\Users\*") {
    if ($Prefix -eq $DefaultPrefix) { Fail "$Py lives in a user profile, so users could replace it; install Python for all users" }
    Say "warning: $Py lives in a user profile"
  }
  $PyVersion = & $Py -c 'import sys; print("%d.%d" % sys.version_info[:2])'

  # --- the virtual environment ------------------------------------------------------------------
  $keep = $false
  $newVenv = $false
  if ((Test-Path -LiteralPath (Join-Path $Prefix 'pyvenv.cfg')) -and (Test-Path -LiteralPath $VenvPy)) {
    $have = & $VenvPy -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>$null
    $keep = ($LASTEXITCODE -eq 0 -and $have -eq $PyVersion)
  }
  if ($keep) {
    Say "upgrading in place: $Prefix (Python $PyVersion)"
  } else {
    if (Test-Path -LiteralPath $Prefix) {
      if (-not (Test-Path -LiteralPath (Join-Path $Prefix 'pyvenv.cfg')) -and -not (Test-Path -LiteralPath $BundleMark) -and
        (Get-ChildItem -LiteralPath $Prefix -Force)) {
        Fail "$Prefix exists and is not a gatekey virtual environment; choose another -Prefix"
      }
      Say "recreating $Prefix for Python $PyVersion"
      Remove-Item -LiteralPath $Prefix -Recurse -Force
    }
    Say "creating the virtual environment $Prefix with $Py"
    & $Py -m venv $Prefix
    if ($LASTEXITCODE -ne 0) { Fail "$Py -m venv failed" }
    $newVenv = $true
  }

  $pipArgs = @('-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--quiet')
  # --isolated: only the wheelhouse, whatever pip configuration the machine has. --require-hashes:
  # only the bytes requirements.txt names (the lock's dependencies and the gatekey wheel).
  if ($Wheelhouse) { $pipArgs += @('--isolated', '--no-index', '--find-links', $Wheelhouse) }
  elseif ($IndexUrl) { $pipArgs += @('--index-url', $IndexUrl) }
  if ($Wheelhouse) {
    $requirements = Join-Path $Wheelhouse 'requirements.txt'
    $lines = Get-Content -LiteralPath $requirements
    $scratch = Join-Path ([IO.Path]::GetTempPath()) ("gatekey-req-" + [guid]::NewGuid())
    New-Item -ItemType Directory -Path $scratch | Out-Null
    $deps = Join-Path $scratch 'deps.txt'
    $gatekeyReq = Join-Path $scratch 'gatekey.txt'
    Set-Content -LiteralPath $deps -Value @($lines | Where-Object { $_ -notlike 'gatekey==*' })
    Set-Content -LiteralPath $gatekeyReq -Value @($lines | Where-Object { $_ -like 'gatekey==*' })
    # pip checks every hash before it installs anything: a refusal leaves the venv as it was.
    if ($Wheel) {
      Say "installing $(Split-Path -Leaf $Wheel), its dependencies from $Wheelhouse (each checked against requirements.txt)"
      $wanted = $deps
    } else {
      if (-not ($lines | Where-Object { $_ -like 'gatekey==*' })) { Fail "$requirements names no gatekey wheel" }
      Say "installing gatekey from $Wheelhouse (every wheel checked against requirements.txt)"
      $wanted = $requirements
    }
    & $VenvPy @pipArgs --require-hashes -r $wanted
    if ($LASTEXITCODE -ne 0) {
      Remove-Item -LiteralPath $scratch -Recurse -Force
      # No half-made venv left behind when this run created it.
      if ($newVenv) { Remove-Item -LiteralPath $Prefix -Recurse -Force -ErrorAction SilentlyContinue }
      Fail "pip refused the wheelhouse $Wheelhouse (above): a wheel missing, or not the one its requirements.txt names; nothing was installed"
    }
    # gatekey once more, alone: a rebuild with the same version number is what gets installed.
    if ($Wheel) { & $VenvPy @pipArgs --no-deps --force-reinstall $Wheel }
    else { & $VenvPy @pipArgs --require-hashes --no-deps --force-reinstall -r $gatekeyReq }
    Remove-Item -LiteralPath $scratch -Recurse -Force
  } elseif ($Wheel) {
    Say "installing $(Split-Path -Leaf $Wheel)"
    & $VenvPy @pipArgs --upgrade $Wheel
    if ($LASTEXITCODE -ne 0) { Fail 'pip install failed' }
    & $VenvPy @pipArgs --no-deps --force-reinstall $Wheel
  } else {
    Say 'installing gatekey'
    & $VenvPy @pipArgs --upgrade gatekey
  }
  if ($LASTEXITCODE -ne 0) { Fail 'pip install failed' }
}
& $Gatekey version *> $null
if ($LASTEXITCODE -ne 0) { Fail "the installed $Gatekey does not run" }
Lock-Down $Prefix

# --- the system config ------------------------------------------------------------------------
# gatekey config validate with a private profile directory and the file standing in as the
# managed config (ignored by gatekey when the real one exists: then validate it in place).
function Test-GatekeyConfig([string]$File) {
  $scratch = Join-Path ([IO.Path]::GetTempPath()) ("gatekey-validate-" + [guid]::NewGuid())
  New-Item -ItemType Directory -Path $scratch | Out-Null
  $saved = @{}
  $vars = @{ LOCALAPPDATA = $scratch; GATEKEY_CACHE_DIR = $scratch; GATEKEY_MANAGED_CONFIG = $File;
    GATEKEY_CONFIG = $null; GATEKEY_PROFILE = $null }
  foreach ($k in $vars.Keys) { $saved[$k] = [Environment]::GetEnvironmentVariable($k); [Environment]::SetEnvironmentVariable($k, $vars[$k]) }
  try {
    $out = & $Gatekey config validate 2>&1
    $ok = ($LASTEXITCODE -eq 0)
  } finally {
    foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k]) }
    Remove-Item -LiteralPath $scratch -Recurse -Force -ErrorAction SilentlyContinue
  }
  if (-not $ok) { $out | ForEach-Object { [Console]::Error.WriteLine("  $_") } }
  return $ok
}

if ($Config) {
  New-Item -ItemType Directory -Force -Path $ConfigDir | Out-Null
  Lock-Down $ConfigDir
  $liveFile = (Test-Path -LiteralPath $SystemConfig) -and ($ConfigDest -eq $SystemConfig)
  if (-not $liveFile) {
    if (Test-Path -LiteralPath $SystemConfig) {
      Say "warning: $SystemConfig exists, so gatekey reads it and cannot validate $Config here"
    } elseif (-not (Test-GatekeyConfig $Config)) {
      Fail "$Config does not validate (gatekey config validate, above); the config was not installed"
    }
    Copy-Item -LiteralPath $Config -Destination $ConfigDest -Force
  } else {
    $old = "$ConfigDest.old"
    Copy-Item -LiteralPath $ConfigDest -Destination $old -Force
    Copy-Item -LiteralPath $Config -Destination $ConfigDest -Force
    if (-not (Test-GatekeyConfig $ConfigDest)) {
      Move-Item -LiteralPath $old -Destination $ConfigDest -Force
      Fail "$Config does not validate (gatekey config validate, above); kept the installed config"
    }
    Remove-Item -LiteralPath $old -Force
  }
  Lock-Down $ConfigDest
  Say "installed $ConfigDest"
} elseif (Test-Path -LiteralPath $ConfigDest) {
  Say "kept $ConfigDest"
}

Set-Content -LiteralPath $Manifest -Value @("# written by gatekey's installer; read by -Uninstall", "config_dir=$ConfigDir")
$version = & $Gatekey version 2>$null
Say "$version installed"
Say "inferenceCredentialHelper: $Gatekey"
exit 0
