# Names each failed assertion in a tap log, for the end of the CI output (the only part the CI reader shows):
# "file > subtest > ... > assertion", then where it failed and the first lines of its diagnostic. At most 30.
# depth = indentation / 4; a subtest's header "# Subtest: X" and its own result line share a depth, its
# assertions sit one deeper. A result line is a summary (skipped) when a failure was printed since its header.
function depth(line) { return int((match(line, /[^ ]/) - 1) / 4) }
/^ *# Subtest: / { d = depth($0); path[d] = substr($0, match($0, /[^ ]/) + 11); mark[d] = mark[d + 1] = printed; next }
/^ *not ok [0-9]+ - / {
  d = depth($0)
  if (printed > mark[d]) { mark[d] = printed; want = 0; next }
  mark[d] = printed + 1
  where = ""; for (i = 0; i < d; i++) where = where path[i] " > "
  name = $0; sub(/^ *not ok [0-9]+ - /, "", name); sub(/ # time=.*$/, "", name)
  # tap repeats a failure in some cases (an uncaught exception, several unfinished tests): name each once.
  if ((where name) in seen) { want = 0; next }
  seen[where name] = 1
  printed++; if (printed <= 30) print where name
  want = 1; next
}
want && /^ *(ok|not ok) / { want = 0 }
want && /^ *fileName: / { f = $2; next }
want && /^ *lineNumber: / { if (printed <= 30) print "    at " f ":" $2; next }
want && /^ *(message|signal|code|timeout): / { m = $0; sub(/^ */, "    ", m); if (printed <= 30) print substr(m, 1, 200); next }
want && /^ *\.\.\.$/ { want = 0 }
