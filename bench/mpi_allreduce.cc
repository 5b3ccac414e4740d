// MPI_Allreduce (sum of floats) over one buffer, timed like
// `meridian bench collective`: a barrier, then the operation; the median of
// the timed iterations. Prints one JSON object from rank 0.
//   mpirun -np 2 build/mpi_allreduce --bytes 16777216 --iters 20
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  long bytes = 16 << 20;
  int iters = 20;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--bytes") == 0) bytes = std::atol(argv[i + 1]);
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::atoi(argv[i + 1]);
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long n = bytes / 4;
  std::vector<float> buf(static_cast<size_t>(n), 1.0f);
  std::vector<double> t;
  for (int i = 0; i < iters + 3; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double dt = MPI_Wtime() - t0;
    if (i >= 3) t.push_back(dt);  // three warm-up rounds
  }
  std::sort(t.begin(), t.end());
  double median = t[t.size() / 2];
  if (rank == 0)
    std::printf("{\"engine\":\"openmpi\",\"procs\":%d,\"bytes\":%ld,\"iters\":%d,"
                "\"median_s\":%.6f,\"gbps\":%.4f}\n",
                size, n * 4, iters, median, static_cast<double>(n * 4) / median / 1e9);
  MPI_Finalize();
  return 0;
}
