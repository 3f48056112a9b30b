    float acc = 0.0f;
    for (int t = 0; t < K; t += TILE) {
        As[ty * TILE + tx] = (row < M && t + tx < K) ? A[row * K + t + tx] : 0.0f;
        Bs[tx * TILE + ty] = (t + ty < K && col < N) ? B[(t + ty) * N + col] : 0.0f;
        __syncthreads();
        for (int k = 0; k < TILE; ++k) acc += As[ty * TILE + k] * Bs[k * TILE + tx];
        __syncthreads();
    }
    if (row < M && col < N) C[row * N + col] = acc;
