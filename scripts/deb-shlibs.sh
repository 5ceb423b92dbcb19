# Sourced by the packaging scripts. shlib_depends PACKAGE [dpkg-shlibdeps ARGS...] prints the
# shared-library part of a package's Depends: dpkg-shlibdeps (dpkg-dev, installed by
# scripts/setup.sh) reads the staged binaries' NEEDED entries and the installed packages'
# shlibs/symbols files. It wants a debian/control in its working directory: a throwaway one in a
# temp dir. Fails when it finds nothing (a binary that links no libc is not ours).
shlib_depends() {
  local package=$1 tmp out
  shift
  tmp=$(mktemp -d)
  mkdir "$tmp/debian"
  printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$package" "$package" > "$tmp/debian/control"
  out=$(cd "$tmp" && dpkg-shlibdeps -O "$@") || { rm -rf "$tmp"; return 1; }
  rm -rf "$tmp"
  out=$(sed -n 's/^shlibs:Depends=//p' <<<"$out")
  [ -n "$out" ] || { echo "dpkg-shlibdeps gave no shlibs:Depends for $package" >&2; return 1; }
  printf '%s\n' "$out"
}
