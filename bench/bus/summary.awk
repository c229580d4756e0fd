# bench/bus/summary.awk - medians of the RESULT lines of bench/bus/run.sh:
# per client, the median rate (min..max) over the rounds and, where the line
# has it, the client's CPU per message (cpu_s=, else client_cpu=% of secs).
function median(a, n,   i, j, t) {
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
/RESULT/ {
  name = ""; msgs = 0; secs = 0; rate = 0; cpu = -1
  for (i = 1; i <= NF; i++) {
    split($i, kv, "=")
    if ($i == "RESULT") { name = $(i + 2) }
    else if (kv[1] == "msgs") msgs = kv[2]
    else if (kv[1] == "secs") secs = kv[2]
    else if (kv[1] == "rate") rate = kv[2]
    else if (kv[1] == "cpu_s") cpu = kv[2]
    else if (kv[1] == "client_cpu" && cpu < 0) { sub("%", "", kv[2]); cpu = kv[2] / 100 * secs }
  }
  if (name == "" || rate == 0) next
  if (!(name in n)) order[++names] = name
  n[name]++; rates[name, n[name]] = rate
  if (cpu >= 0 && msgs > 0) { nc[name]++; cpus[name, nc[name]] = cpu / msgs * 1e6 }
}
END {
  printf "%-44s %8s %18s %16s\n", "client", "rounds", "msgs/s median", "CPU us/msg"
  for (k = 1; k <= names; k++) {
    m = order[k]; delete a; lo = hi = rates[m, 1]
    for (i = 1; i <= n[m]; i++) { a[i] = rates[m, i]; if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] }
    r = median(a, n[m]); c = "-"
    if (nc[m]) { delete a; for (i = 1; i <= nc[m]; i++) a[i] = cpus[m, i]; c = sprintf("%.1f", median(a, nc[m])) }
    printf "%-44s %8d %9.0f (%s..%s) %16s\n", m, n[m], r, lo, hi, c
  }
}
