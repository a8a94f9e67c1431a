"""Datasets: readers for imagefolder, YOLO and COCO into one index, and quality checks."""
